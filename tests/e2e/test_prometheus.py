"""A real Prometheus (Debian's) scraping the running native stack, with the
shop's alert rules: every process is a target that is up, and a query for the
shop's series answers. Natively only: the container rig can't run the
Prometheus image (nothing can be pulled there); the compose profile is checked
offline in tests/docker and tests/observability."""

import socket
import subprocess
import sys

import pytest
import requests

from tests.e2e.conftest import ROOT, SHOP_STACK_IS_DOCKER
from tests.support import eventually

sys.path.insert(0, str(ROOT / "scripts"))  # the native stack's modules, as scripts/stack runs them

import native_prometheus  # noqa: E402
import native_stack  # noqa: E402

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        SHOP_STACK_IS_DOCKER, reason="natively only: the container rig can't run the Prometheus image (no pulls)"
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def prometheus(tmp_path, gateway):
    """A Prometheus of the test's own (its own port and data), scraping what the
    running stack runs, as `scripts/stack up --observability` would."""
    config = tmp_path / "prometheus.yml"
    native_prometheus.write(config, native_stack.scrape_targets(native_stack.processes({})))
    listen = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        native_prometheus.argv(config, tmp_path / "data", listen),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    url = f"http://{listen}"
    try:
        eventually(lambda: _ready(url), deadline=30, interval=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(15)


def _ready(url) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def query(url: str, expression: str) -> list[dict]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expression}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_every_process_and_answers_for_the_shops_series(prometheus, gateway):
    gateway.get("/products")  # at least one request counted

    def every_target_up():
        """every process is a target, and up"""
        targets = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return targets and all(target["health"] == "up" for target in targets) and targets

    targets = eventually(every_target_up, deadline=60, interval=1)
    assert {target["labels"]["process"] for target in targets} >= {"users", "products", "orders", "gateway"}

    served = eventually(
        lambda: query(prometheus, 'sum by (service) (shop_http_requests_total{service="products"})'), deadline=30
    )
    assert float(served[0]["value"][1]) >= 1
    assert eventually(lambda: query(prometheus, "max by (queue) (shop_queue_consumers)"), deadline=30)

    rules = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {rule["name"] for group in rules for rule in group["rules"]} == {
        "DeadLettersWaiting",
        "OutboxStuck",
        "QueueWithoutConsumer",
        "ServerErrors",
        "SlowSettlement",
    }
