"""End-to-end fixtures: the running stack, reached only through the gateway.

Works against either way of running the system: the native stack (default) or
docker compose (SHOP_STACK=docker, as `scripts/test --docker` sets), whose
containers are inspected with the Docker SDK.
"""
import os
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_URL = os.environ.get("SHOP_GATEWAY_URL", "http://127.0.0.1:8000")
ISSUER = "shop-users"
PASSWORD = "a-strong-password-123"


def eventually(check, deadline=15.0, interval=0.1):
    """Poll `check` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"still false after {deadline}s: {check.__doc__ or check}")
        time.sleep(interval)


class NativeStack:
    """The processes scripts/stack started; their logs are files under var/log."""

    def logs(self, tail=40) -> str:
        chunks = []
        for log in sorted((ROOT / "var" / "log").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            chunks.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(chunks)


class DockerStack:
    """The compose project's containers, through the Docker SDK."""

    def __init__(self):
        import docker  # only needed in docker mode

        self.client = docker.from_env()
        self.containers = self.client.containers.list(all=True, filters={"label": "com.docker.compose.project=shop"})
        if not self.containers:
            pytest.fail("no containers of compose project 'shop': run scripts/stack up --docker")
        unhealthy = [
            c.name for c in self.containers
            if c.labels.get("com.docker.compose.service") != "kong-config"
            and c.attrs["State"].get("Health", {}).get("Status") != "healthy"
        ]
        if unhealthy:
            pytest.fail(f"containers not healthy: {', '.join(unhealthy)}")

    def logs(self, tail=40) -> str:
        return "\n".join(
            f"--- {c.name}\n{c.logs(tail=tail).decode(errors='replace')}" for c in self.containers
        )


@pytest.fixture(scope="session")
def stack():
    return DockerStack() if os.environ.get("SHOP_STACK") == "docker" else NativeStack()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # When an end-to-end test fails, the processes' logs say why; attach them to the report.
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "stack" in item.funcargs:
        report.sections.append(("stack logs", item.funcargs["stack"].logs()))


@pytest.fixture(scope="session")
def gateway(stack):
    """A requests session bound to the gateway; fails fast if nothing serves there."""
    session = requests.Session()

    def serving():
        try:
            return session.get(f"{GATEWAY_URL}/products", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        eventually(serving, deadline=10)
    except AssertionError:
        pytest.fail(f"the gateway at {GATEWAY_URL} does not serve: run scripts/stack up first")

    class Gateway:
        url = GATEWAY_URL

        def request(self, method, path, **kwargs):
            kwargs.setdefault("timeout", 10)
            return session.request(method, f"{GATEWAY_URL}{path}", **kwargs)

        def get(self, path, **kwargs):
            return self.request("GET", path, **kwargs)

        def post(self, path, **kwargs):
            return self.request("POST", path, **kwargs)

    return Gateway()


@pytest.fixture(scope="session")
def jwt_secret():
    """The secret the stack signs with: the environment's, else the one in .env."""
    if os.environ.get("JWT_SECRET"):
        return os.environ["JWT_SECRET"]
    for line in (ROOT / ".env").read_text().splitlines():
        if line.startswith("JWT_SECRET="):
            return line.split("=", 1)[1].strip()
    pytest.fail("JWT_SECRET is neither in the environment nor in .env")


@pytest.fixture
def make_user(gateway):
    """Factory: register a fresh user and log in; returns (user id, auth headers)."""

    def _make():
        email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
        registered = gateway.post("/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        token = gateway.post("/token", json={"email": email, "password": PASSWORD})
        assert token.status_code == 200, token.text
        return registered.json()["id"], {"Authorization": f"Bearer {token.json()['access_token']}"}

    return _make


@pytest.fixture
def make_product(gateway, make_user):
    """Factory: create a product through the gateway; returns its JSON."""
    _, auth = make_user()

    def _make(name="Quantum Mechanical Keyboard", price=249.99, quantity=50):
        response = gateway.post("/products", json={"name": name, "price": price, "quantity": quantity}, headers=auth)
        assert response.status_code == 201, response.text
        return response.json()

    return _make
