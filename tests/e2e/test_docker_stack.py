"""The docker compose stack as its users meet it: scripts/stack against a real
engine, Docker contexts, Kong's Admin API closed to everyone but an operator who
asks for it, and an edited kong.yml taking effect on the next `up`.

Docker mode only (scripts/test --docker); natively there are no containers.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.e2e.conftest import GATEWAY_URL, ROOT
from tests.support import client_from, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.environ.get("SHOP_STACK") != "docker", reason="docker compose only: scripts/test --docker"),
]

STACK = [str(ROOT / "scripts" / "stack"), "--docker"]


def run(argv, timeout=120, **env):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})


def compose(*args, timeout=120):
    return run(["docker", "compose", *args], timeout=timeout)


def docker_endpoint() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    current = run(["docker", "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"])
    assert current.returncode == 0, current.stderr
    return current.stdout.strip()


# -- finding the engine ---------------------------------------------------------------


def test_the_cli_and_the_sdk_follow_the_current_docker_context(tmp_path):
    # Docker Desktop, rootless Docker and Colima set no DOCKER_HOST: the engine is
    # named by the CLI's current context. Make one of our own and use only it.
    config = {"DOCKER_CONFIG": str(tmp_path)}
    endpoint = docker_endpoint()
    # A user's config directory holds their CLI plugins (docker compose among them).
    plugins = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
    if plugins.is_dir():
        (tmp_path / "cli-plugins").symlink_to(plugins)
    for argv in (
        ["docker", "context", "create", "shop-test", "--docker", f"host={endpoint}"],
        ["docker", "context", "use", "shop-test"],
    ):
        made = run(argv, **config)
        assert made.returncode == 0, made.stderr
    env = {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"} | config

    status = subprocess.run(STACK + ["status"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    sdk = subprocess.run(
        [sys.executable, "-c", "import docker; print(docker.from_env().ping())"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )

    assert status.returncode == 0, status.stdout + status.stderr
    assert sdk.stdout.strip() == "True", sdk.stderr


# -- scripts/stack --------------------------------------------------------------------


def test_status_of_a_project_without_containers_is_a_failure():
    # `docker compose ps` exits 0 with no containers; scripts/test must not take
    # that for a running stack.
    result = run(STACK + ["status"], COMPOSE_PROJECT_NAME=f"shop-absent-{uuid.uuid4().hex[:8]}")

    assert result.returncode == 1
    assert "no containers" in result.stdout


def test_up_gives_up_on_a_container_that_never_gets_healthy(tmp_path):
    project = f"shop-failing-{uuid.uuid4().hex[:8]}"
    compose_file = tmp_path / "compose.yml"
    compose_file.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "failing": {
                        "image": "shop/users:local",
                        "pull_policy": "never",
                        "restart": "unless-stopped",
                        "command": ["sh", "-c", "sleep 3; exit 1"],
                        "healthcheck": {"test": ["CMD", "false"], "interval": "1s", "retries": 1},
                    }
                }
            }
        )
    )
    env = {"COMPOSE_FILE": str(compose_file), "COMPOSE_PROJECT_NAME": project, "SHOP_UP_TIMEOUT": "15"}
    started = time.monotonic()
    try:
        result = run(STACK + ["up"], timeout=150, **env)
    finally:
        run(["docker", "compose", "down"], **env)

    assert result.returncode != 0, result.stdout + result.stderr
    assert time.monotonic() - started < 120
    assert "failing" in result.stderr  # which container, and its log


# -- Kong's Admin API (the operator's way in, both modes: test_kong_admin.py) ----------


def test_no_other_container_and_no_host_port_reaches_the_admin_api(stack):
    probe = (
        "import socket, sys\n"
        "def answers(port):\n"
        "    try:\n"
        "        socket.create_connection(('kong', port), timeout=3).close(); return True\n"
        "    except OSError:\n"
        "        return False\n"
        "print(answers(8000), answers(8001))\n"
    )
    result = stack.exec("users", ["python", "-c", probe])

    # The proxy answers from the backend network (so the probe can reach Kong), the Admin API doesn't.
    assert result == "True False"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 8001), timeout=3).close()


def test_kong_yml_passes_kongs_own_parser(stack):
    # Full schema validation, plugin configs included (kong/cmd/config.lua), of
    # the file Kong runs.
    assert "parse successful" in stack.exec("kong", ["kong", "config", "parse", "/kong-config/kong.yml"])


# -- editing kong.yml (last: it restarts Kong) ----------------------------------------


def login_limit_is(limit: int) -> bool:
    """Whether the gateway announces this per-minute login limit (rate-limiting's header)."""
    address = f"127.0.0.{uuid.uuid4().int % 200 + 50}"
    try:
        with client_from(address) as client:
            response = client.post(
                f"{GATEWAY_URL}/token", timeout=10, json={"email": "nobody@example.com", "password": "not-the-password"}
            )
    except requests.RequestException:  # Kong still starting
        return False
    return response.headers.get("X-RateLimit-Limit-Minute") == str(limit)


def test_zz_an_edited_kong_yml_is_served_after_the_next_up(stack):
    kong_yml = ROOT / "kong.yml"
    original = kong_yml.read_text()
    assert original.count("minute: 60") == 1
    before = stack.started_at("kong")
    try:
        kong_yml.write_text(original.replace("minute: 60", "minute: 59"))
        up = run(STACK + ["up"], timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        assert stack.started_at("kong") != before, "Kong was not restarted"
        eventually(lambda: login_limit_is(59), deadline=30)
    finally:
        Path(kong_yml).write_text(original)
        restored = run(STACK + ["up"], timeout=600)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    eventually(lambda: login_limit_is(60), deadline=30)
