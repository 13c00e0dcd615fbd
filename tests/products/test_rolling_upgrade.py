"""A rolling upgrade, half done: the products-worker of an earlier release, run for
real from git, next to this release's orders, on this release's schema (the
migrations run before any new process starts, so an old worker that is still
running works on the new schema).

PREVIOUS is the last release whose products-worker kept no record of what it
took per order (products' reservations came in with cancelling, fd8e740). Had it
reserved an order that can be cancelled, the cancel would find no record and
give nothing back (issue 16, finding 8). It must refuse such orders instead, and
the rollout's end (this release's worker, the dead letters requeued) must settle
them, each effect once.
"""

import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from common.events import queues
from common.messaging import dead_letters, topology
from common.messaging.publisher import Publisher
from common.messaging.relay import OutboxRelay
from orders.models import OutboxMessage as OrdersOutbox
from orders.models import db as orders_db
from products import worker as products_worker
from tests.support import ROOT, eventually, queue_depth, running

pytestmark = pytest.mark.integration

PREVIOUS = "79cf0f9"
ANN = {"X-User-Id": "1"}


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory):
    """The previous release's common/ and products/, as git has them."""
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"]).returncode != 0:
        pytest.skip(f"this checkout has no history back to {PREVIOUS} (a shallow clone): no previous release to run")
    root = tmp_path_factory.mktemp("previous-release")
    tree = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS, "common", "products"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=tree.stdout, check=True)
    return root


@contextmanager
def previous_worker(root, products_app, amqp_url, broker):
    """That release's products-worker, consuming from the shared queue until the block ends."""
    env = {
        **os.environ,
        "DATABASE_URL": products_app.config["SQLALCHEMY_DATABASE_URI"],
        "AMQP_URL": amqp_url,
        "METRICS_PORT": "",
        "HEARTBEAT_FILE": "",
    }
    process = subprocess.Popen([sys.executable, "-m", "products.worker"], cwd=root, env=env)
    try:
        eventually(lambda: consumers(broker) == 1, deadline=20)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)
    eventually(lambda: consumers(broker) == 0)


def consumers(broker) -> int:
    return queues.PRODUCTS_ORDER_CREATED(broker.default_channel).queue_declare(passive=True).consumer_count


@pytest.fixture
def buyer(orders_app, clean_orders, clean_products):
    """Ann, placing and cancelling orders through this release's orders service."""
    return orders_app.test_client()


@pytest.fixture
def this_releases_worker(products_app, tmp_path):
    """This release's products-worker, consuming until the block ends."""
    return lambda: running(products_worker.consumer(products_app, str(tmp_path / "alive")), products_app)


@pytest.fixture
def relay_orders(orders_app, amqp_url):
    """Publish what the orders outbox holds now, as orders-relay would."""
    publisher = Publisher(amqp_url, queues.DECLARED)

    def _relay():
        with orders_app.app_context():
            OutboxRelay(orders_db, OrdersOutbox, publisher).relay_due()

    yield _relay
    publisher.close()


def place(client, product, quantity) -> int:
    response = client.post("/orders", json={"items": [{"product_id": product, "quantity": quantity}]}, headers=ANN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def cancel(client, order_id) -> None:
    response = client.post(f"/orders/{order_id}/cancel", headers=ANN)
    assert response.status_code == 200, response.get_json()


def test_an_order_placed_now_is_refused_by_the_previous_worker_and_settled_after_the_rollout(
    previous_release, buyer, products_app, amqp_url, broker, make_product, stock_of, relay_orders, this_releases_worker
):
    product = make_product(quantity=10)
    with previous_worker(previous_release, products_app, amqp_url, broker):
        order = place(buyer, product, 3)
        relay_orders()
        # Refused, loudly (a dead letter, which alerts), instead of taken unrecorded.
        eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1, deadline=20)
        assert stock_of(product) == 10

    # The rollout ends: this release's worker runs, the operator requeues (docs/operations.md's runbook).
    with this_releases_worker():
        dead_letters.requeue(broker, set())
        eventually(lambda: stock_of(product) == 7)
        cancel(buyer, order)
        relay_orders()
        eventually(lambda: stock_of(product) == 10)


def test_a_cancel_that_reaches_the_previous_worker_is_dead_lettered_and_given_back_once_requeued(
    previous_release, buyer, products_app, amqp_url, broker, make_product, stock_of, relay_orders, this_releases_worker
):
    product = make_product(quantity=10)
    with this_releases_worker():
        order = place(buyer, product, 3)
        relay_orders()
        eventually(lambda: stock_of(product) == 7)

    # A worker of the previous release is back (a rollback, a node that wasn't rolled yet).
    with previous_worker(previous_release, products_app, amqp_url, broker):
        cancel(buyer, order)
        relay_orders()
        eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1, deadline=20)
        assert stock_of(product) == 7

    with this_releases_worker():
        dead_letters.requeue(broker, set())
        eventually(lambda: stock_of(product) == 10)
        dead_letters.requeue(broker, set())  # nothing left to give back twice
        assert queue_depth(broker, queues.PRODUCTS_ORDER_CREATED) == 0
    assert stock_of(product) == 10
