"""End-to-end fixtures: the running stack, reached only through the gateway.

Works against either way of running the system: the native stack (default) or
docker compose (SHOP_STACK=docker, as `scripts/test --docker` sets), whose
containers are inspected with the Docker SDK. Both put Kong 3.9.3 in front.
"""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from common.settings import Settings
from tests import kong_routes
from tests.support import eventually, politely

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_URL = os.environ.get("SHOP_GATEWAY_URL", "http://127.0.0.1:8000")
# scripts/test --docker sets it: the stack is docker compose, not the native one.
SHOP_STACK_IS_DOCKER = os.environ.get("SHOP_STACK") == "docker"
ISSUER = "shop-users"
SETTLE_DEADLINE = 60.0
PASSWORD = "a-strong-password-123"
# Every route and method behind the jwt plugin, with a path it matches: from kong.yml.
PROTECTED = [(method, path) for method, path, _ in kong_routes.protected()]


class NativeStack:
    """The processes scripts/stack started under supervisord (logs under var/log),
    and the host's RabbitMQ."""

    amqp_url = Settings.from_env("products").amqp_url

    def _stack(self, *args):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "native_stack.py"), *args], check=True, cwd=ROOT)

    def stop(self, name, kill=False):
        self._stack("stop", *(["--kill"] if kill else []), name)

    def start(self, name):
        self._stack("start", name)  # returns once it is healthy

    def scale(self, spec: str):
        """Run this many copies of these processes (scripts/stack up --scale); returns once healthy."""
        subprocess.run(
            [str(ROOT / "scripts" / "stack"), "up", "--native", "--scale", spec],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )

    def _supervisor(self):
        sys.path.insert(0, str(ROOT / "scripts"))  # as scripts/stack runs it
        import native_supervisor

        return native_supervisor

    def crash(self, name):
        """SIGKILL the process behind the manager's back, as the kernel's OOM killer
        would; returns an opaque token of the run that died (its pid)."""
        pid = self._supervisor().pid(name)
        assert pid, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    def restarted_since(self, name, token) -> bool:
        """Running again, as a new process, and healthy, since crash() returned `token`."""
        pid = self._supervisor().pid(name)
        if pid is None or pid == token:
            return False
        import native_stack  # on sys.path since _supervisor()

        [proc] = [proc for proc in native_stack.processes({}) if proc.name == name]
        return native_stack.health(proc) is None

    def kong_admin(self, path: str) -> subprocess.CompletedProcess:
        """What an operator gets from Kong's Admin API on this host's loopback (README)."""
        return subprocess.run(
            [sys.executable, "-m", "kong.admin", path], cwd=ROOT, capture_output=True, text=True, timeout=30
        )

    def copy_names(self, process: str) -> list[str]:
        """The copies of a process the stack runs (its --scale): products-worker, products-worker.2, ..."""
        scale_file = ROOT / "var" / "run" / "scale.json"
        count = json.loads(scale_file.read_text()).get(process, 1) if scale_file.exists() else 1
        return [process if k == 1 else f"{process}.{k}" for k in range(1, count + 1)]

    def logs_of_copies(self, process: str) -> dict[str, str]:
        """Each running copy's log, by copy."""
        return {
            name: (ROOT / "var" / "log" / f"{name}.log").read_text(errors="replace")
            for name in self.copy_names(process)
        }

    def restart_database(self):
        # The host's cluster (this kind of machine runs one, at /etc/postgresql/<version>/main).
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)

    def stop_broker(self):
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True)

    def start_broker(self):
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True)
        subprocess.run(["rabbitmqctl", "-q", "await_startup", "--timeout", "60"], check=True)

    def publish_raw(self, routing_key, body: bytes, content_type):
        from kombu import Connection

        from common.messaging import topology

        with Connection(self.amqp_url) as connection, connection.Producer() as producer:
            producer.publish(
                body,
                exchange=topology.EVENTS,
                routing_key=routing_key,
                content_type=content_type,
                content_encoding="binary",
            )

    def queue_depth(self, name) -> int:
        from kombu import Connection

        with Connection(self.amqp_url) as connection:
            return connection.default_channel.queue_declare(name, passive=True).message_count

    def processes_logging(self, text) -> set[str]:
        # A copy's log is products-worker.2.log: it counts for products-worker.
        logs = (ROOT / "var" / "log").glob("*.log")
        return {log.stem.split(".")[0] for log in logs if text in log.read_text(errors="replace")}

    def logs(self, tail=40) -> str:
        chunks = []
        for log in sorted((ROOT / "var" / "log").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            chunks.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(chunks)


# Containers that do their job at `up` and exit: they have no health.
ONE_SHOT = {"kong-config", "postgres-setup"}


class DockerStack:
    """The compose project's containers, through the Docker SDK; RabbitMQ through
    its management API (the only broker port compose publishes)."""

    management = "http://127.0.0.1:15672/api"
    credentials = ("shop", os.environ.get("RABBITMQ_PASSWORD", "shop-dev"))

    def __init__(self):
        import docker  # only needed in docker mode

        self.client = docker.from_env()
        containers = self._containers()
        if not containers:
            pytest.fail("no containers of compose project 'shop': run scripts/stack up --docker")
        unhealthy = [name for name, c in containers.items() if name not in ONE_SHOT and not self._healthy(c)]
        if unhealthy:
            pytest.fail(f"containers not healthy: {', '.join(unhealthy)}")

    def _containers(self) -> dict:
        found = self.client.containers.list(all=True, filters={"label": "com.docker.compose.project=shop"})
        return {c.labels["com.docker.compose.service"]: c for c in found}

    @staticmethod
    def _healthy(container) -> bool:
        container.reload()
        return container.attrs["State"].get("Health", {}).get("Status") == "healthy"

    def stop(self, name, kill=False):
        container = self._containers()[name]
        container.kill() if kill else container.stop(timeout=20)

    def start(self, name):
        container = self._containers()[name]
        container.start()
        eventually(lambda: self._healthy(container), deadline=90, interval=1)

    def exec(self, name, argv) -> str:
        """Run a command in a running container; its output, stripped (it must succeed)."""
        code, output = self._containers()[name].exec_run(argv)
        assert code == 0, output.decode(errors="replace")
        return output.decode(errors="replace").strip()

    def kong_admin(self, path: str) -> subprocess.CompletedProcess:
        """What `docker compose run --rm kong-admin PATH` prints: the README's way in.
        --no-deps: Kong runs already, and nothing else is to be touched."""
        return subprocess.run(
            ["docker", "compose", "run", "--rm", "--no-deps", "kong-admin", path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def crash(self, name):
        """SIGKILL the container's main process from inside, as the kernel's OOM
        killer would (not `docker kill`, which counts as stopping it on purpose);
        returns an opaque token of the run that died (its start time)."""
        started = self.started_at(name)
        kill = (
            "import os, signal\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    if int(pid) not in (1, os.getpid()) and os.getppid() != int(pid):\n"
            "        os.kill(int(pid), signal.SIGKILL)\n"
        )
        # Started detached and never inspected: the exec dies with the container,
        # and an engine may forget it at once (podman does; exec_run would ask).
        execution = self.client.api.exec_create(self._containers()[name].id, ["python", "-c", kill])
        self.client.api.exec_start(execution["Id"], detach=True)
        return started

    def restarted_since(self, name, token) -> bool:
        container = self._containers()[name]
        container.reload()
        return container.attrs["State"]["StartedAt"] != token and self._healthy(container)

    def started_at(self, name) -> str:
        container = self._containers()[name]
        container.reload()
        return container.attrs["State"]["StartedAt"]

    def copy_names(self, process: str) -> list[str]:
        """One container per compose service here: the copy is the service."""
        return [process]

    def logs_of_copies(self, process: str) -> dict[str, str]:
        return {process: self._containers()[process].logs().decode(errors="replace")}

    def restart_database(self):
        container = self._containers()["postgres"]
        container.restart(timeout=30)
        eventually(lambda: self._healthy(container), deadline=90, interval=1)

    def stop_broker(self):
        self.stop("rabbitmq")

    def start_broker(self):
        self.start("rabbitmq")

    def publish_raw(self, routing_key, body: bytes, content_type):
        response = requests.post(
            f"{self.management}/exchanges/%2F/shop.events/publish",
            auth=self.credentials,
            json={
                "properties": {"content_type": content_type, "delivery_mode": 2},
                "routing_key": routing_key,
                "payload": body.decode("latin-1"),
                "payload_encoding": "string",
            },
            timeout=10,
        )
        assert response.ok and response.json()["routed"], response.text

    def queue_depth(self, name) -> int:
        # The management API's counts lag by a few seconds; good enough for polling tests.
        response = requests.get(f"{self.management}/queues/%2F/{name}", auth=self.credentials, timeout=10)
        response.raise_for_status()
        return response.json().get("messages", 0)

    def processes_logging(self, text) -> set[str]:
        return {name for name, c in self._containers().items() if text.encode() in c.logs()}

    def logs(self, tail=40) -> str:
        return "\n".join(
            f"--- {name}\n{c.logs(tail=tail).decode(errors='replace')}" for name, c in self._containers().items()
        )


@pytest.fixture(scope="session")
def stack():
    return DockerStack() if SHOP_STACK_IS_DOCKER else NativeStack()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # When an end-to-end test fails, the processes' logs say why; attach them to the report.
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "stack" in item.funcargs:
        report.sections.append(("stack logs", item.funcargs["stack"].logs()))


@pytest.fixture(scope="session")
def gateway(stack):
    """A requests session bound to the gateway, which waits out its rate limits
    (tests.support.politely); fails fast if nothing serves there."""
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

        def request(self, method, path, data=None, **kwargs):
            """`data` may be a function that makes the body (a generator, streamed
            chunked): sent again after a 429, a body must be made anew."""
            kwargs.setdefault("timeout", 10)
            return politely(
                lambda: session.request(
                    method, f"{GATEWAY_URL}{path}", data=data() if callable(data) else data, **kwargs
                )
            )

        def get(self, path, **kwargs):
            return self.request("GET", path, **kwargs)

        def post(self, path, **kwargs):
            return self.request("POST", path, **kwargs)

    return Gateway()


@pytest.fixture(scope="session")
def stack_jwt_secret():
    """The secret the stack signs with: the environment's, else the one in .env."""
    if os.environ.get("JWT_SECRET"):
        return os.environ["JWT_SECRET"]
    for line in (ROOT / ".env").read_text().splitlines():
        if line.startswith("JWT_SECRET="):
            return line.split("=", 1)[1].strip()
    pytest.fail("JWT_SECRET is neither in the environment nor in .env")


def _new_user(gateway):
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    registered = gateway.post("/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    token = gateway.post("/token", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return registered.json()["id"], {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
def make_user(gateway):
    """Factory: register a fresh user and log in; returns (user id, auth headers).

    Each call is a real POST /register and /token, which the gateway rate-limits
    per client address: tests that just need *a* user take `session_user`."""
    return lambda: _new_user(gateway)


@pytest.fixture(scope="session")
def session_user(gateway):
    """One user for the whole run: (user id, auth headers)."""
    return _new_user(gateway)


@pytest.fixture
def create_product(gateway, session_user):
    """Factory: create a product through the gateway; returns its JSON."""
    _, auth = session_user

    def _make(name="Quantum Mechanical Keyboard", price=249.99, quantity=50):
        response = gateway.post("/products", json={"name": name, "price": price, "quantity": quantity}, headers=auth)
        assert response.status_code == 201, response.text
        return response.json()

    return _make


@pytest.fixture
def shop(gateway, session_user, create_product):
    """One shopper placing orders and watching them settle."""
    _, auth = session_user

    class Shop:
        def try_order(self, product_id, quantity=1):
            """The new order's id, or None if it was refused at once for lack of stock (409)."""
            response = gateway.post(
                "/orders", json={"items": [{"product_id": product_id, "quantity": quantity}]}, headers=auth
            )
            assert response.status_code in (201, 409), response.text
            if response.status_code == 409:
                return None
            assert response.json()["status"] == "PENDING"
            return response.json()["id"]

        def order(self, product_id, quantity=1):
            order_id = self.try_order(product_id, quantity)
            assert order_id is not None, "refused for lack of stock"
            return order_id

        def statuses(self, order_ids):
            return {
                order_id: gateway.get(f"/orders/{order_id}", headers=auth).json()["status"] for order_id in order_ids
            }

        def settle(self, order_ids, deadline=SETTLE_DEADLINE):
            """Wait until no order is PENDING; return their statuses."""

            def all_settled():
                statuses = self.statuses(order_ids)
                return statuses if "PENDING" not in statuses.values() else None

            return eventually(all_settled, deadline=deadline, interval=0.25)

        def rejected_of_two(self, order_ids) -> int:
            """Of two orders for the same last units, once both settled, the one
            REJECTED (the other CONFIRMED). Which one wins is not promised: with
            several relays their events may reach the queue in either order."""
            outcomes = self.settle(order_ids)
            assert sorted(outcomes.values()) == ["CONFIRMED", "REJECTED"], outcomes
            return next(order for order, status in outcomes.items() if status == "REJECTED")

        def cancel(self, order_id):
            """The order as the cancel answers it (200)."""
            response = gateway.post(f"/orders/{order_id}/cancel", headers=auth)
            assert response.status_code == 200, response.text
            return response.json()

        def race_cancel(self, order_id):
            """Cancel an order whose reservation may be deciding meanwhile: the order
            as cancelled (200), or None if it was REJECTED first (409), which is
            final."""
            response = gateway.post(f"/orders/{order_id}/cancel", headers=auth)
            assert response.status_code in (200, 409), response.text
            if response.status_code == 409:
                assert self.statuses([order_id])[order_id] == "REJECTED", response.text
                return None
            return response.json()

        def stock(self, product_id):
            return gateway.get(f"/products/{product_id}").json()["quantity"]

        def all_orders(self):
            """Every order of the shopper, newest first."""
            found, page = [], 1
            while True:
                listed = gateway.get(f"/orders?page={page}&per_page=100", headers=auth).json()
                found += listed["items"]
                if page * 100 >= listed["total"]:
                    return found
                page += 1

    shop = Shop()
    shop.create_product = create_product
    return shop
