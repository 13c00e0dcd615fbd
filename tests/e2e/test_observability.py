"""Operating the running system: one request id across every process, the stack's
one-screen status, and its logs command."""

import os
import subprocess
import uuid

import pytest

from tests.e2e.conftest import ROOT
from tests.support import eventually

pytestmark = pytest.mark.e2e

# Everyone who touches an order: the service, its peer, both relays, both workers.
ORDER_STORY = {"orders", "products", "orders-relay", "products-worker", "products-relay", "orders-worker"}


def stack_command(*args):
    return subprocess.run(
        [str(ROOT / "scripts" / "stack"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SHOP_STACK": os.environ.get("SHOP_STACK", "native")},
    )


@pytest.fixture
def traced_order(gateway, session_user, create_product):
    """An order placed under a request id of our choosing, once it has settled."""
    request_id = f"e2e-{uuid.uuid4().hex}"
    product = create_product(quantity=5)["id"]
    response = gateway.post(
        "/orders",
        json={"items": [{"product_id": product, "quantity": 1}]},
        headers={**session_user[1], "X-Request-ID": request_id},
    )
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == request_id
    order = response.json()["id"]
    eventually(lambda: gateway.get(f"/orders/{order}", headers=session_user[1]).json()["status"] == "CONFIRMED")
    return request_id


def test_one_request_id_is_logged_by_every_process_the_order_touched(traced_order, stack):
    def everyone_logged_it():
        """each process of the order's story logged the request id"""
        return ORDER_STORY <= stack.processes_logging(traced_order)

    eventually(everyone_logged_it)


def test_stack_logs_tells_the_story_of_one_request(traced_order):
    eventually(
        lambda: stack_command("logs", "--request-id", traced_order).stdout.count(traced_order) >= len(ORDER_STORY)
    )
    story = stack_command("logs", "--request-id", traced_order)
    assert story.returncode == 0
    for process in ORDER_STORY:
        assert process in story.stdout


def test_stack_status_shows_processes_queues_and_outboxes():
    status = stack_command("status")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("users", "products-worker", "orders-relay", "gateway"):
        assert name in status.stdout
    for line in ("products.order-created", "orders.inventory-results", "shop.dead-letters", "outbox"):
        assert line in status.stdout
