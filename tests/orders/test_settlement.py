"""orders-worker against real RabbitMQ and PostgreSQL: inventory outcomes settle orders once."""

import pytest

from common.events import contracts
from common.messaging import topology
from orders import worker as orders_worker
from orders.models import Order, db
from tests.support import eventually, queue_depth, running

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(orders_app, broker, tmp_path):
    with running(orders_worker.consumer(orders_app, str(tmp_path / "alive")), orders_app) as loop:
        yield loop


@pytest.fixture
def make_order(orders_app, client):
    def _make(user_id=1):
        with orders_app.app_context():
            order = Order(user_id=user_id, total=10)
            db.session.add(order)
            db.session.commit()
            return order.id

    return _make


@pytest.fixture
def order_state(orders_app):
    def _state(order_id):
        with orders_app.app_context():
            order = db.session.get(Order, order_id)
            return order.status, order.reason

    return _state


def reserved(order_id):
    return contracts.INVENTORY_RESERVED.new(order_id=order_id)


def rejected(order_id, reason="Not enough stock for product 1: 0 left, 1 requested."):
    shortage = {"product_id": 1, "requested": 1, "available": 0}
    return contracts.INVENTORY_REJECTED.new(order_id=order_id, reason=reason, shortages=[shortage])


def test_reserved_confirms_the_order(worker, publish, make_order, order_state):
    order = make_order()
    publish(reserved(order))
    eventually(lambda: order_state(order) == ("CONFIRMED", None))


def test_rejected_rejects_it_with_the_reason(worker, publish, make_order, order_state, client):
    order = make_order(user_id=1)
    publish(rejected(order, reason="Not enough stock for product 1: 0 left, 1 requested."))
    eventually(lambda: order_state(order)[0] == "REJECTED")
    shown = client.get(f"/orders/{order}", headers={"X-User-Id": "1"}).get_json()
    assert shown["status"] == "REJECTED"
    assert shown["reason"] == "Not enough stock for product 1: 0 left, 1 requested."
    assert shown["settled_at"] is not None


def test_a_settled_order_is_never_overturned(worker, publish, make_order, order_state):
    first, marker = make_order(), make_order()
    publish(reserved(first))
    publish(rejected(first))  # a second, contradicting outcome
    publish(reserved(marker))
    eventually(lambda: order_state(marker)[0] == "CONFIRMED")
    assert order_state(first) == ("CONFIRMED", None)


def test_a_redelivered_outcome_changes_nothing(worker, publish, make_order, order_state, broker):
    order = make_order()
    event = reserved(order)
    publish(event)
    publish(event)
    marker = make_order()
    publish(reserved(marker))
    eventually(lambda: order_state(marker)[0] == "CONFIRMED")
    assert order_state(order)[0] == "CONFIRMED"
    assert queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 0


def test_a_late_reservation_never_overturns_a_cancellation(worker, publish, make_order, order_state, orders_app):
    # The buyer cancelled while the reservation was in flight; products gives the
    # stock back when OrderCancelled reaches it (tests/products).
    order, marker = make_order(), make_order()
    with orders_app.app_context():
        db.session.get(Order, order).status = "CANCELLED"
        db.session.commit()
    publish(reserved(order), reserved(marker))
    eventually(lambda: order_state(marker)[0] == "CONFIRMED")
    assert order_state(order)[0] == "CANCELLED"


def settlement_lags() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("shop_order_settlement_lag_seconds_count") or 0


def test_each_settlement_is_observed_once_as_lag(worker, publish, make_order, order_state):
    before = settlement_lags()
    orders = [make_order() for _ in range(3)]
    publish(*(reserved(order) for order in orders), reserved(orders[0]))  # a second outcome settles nothing
    eventually(lambda: all(order_state(order)[0] == "CONFIRMED" for order in orders))
    eventually(lambda: settlement_lags() == before + 3)


def test_an_outcome_for_an_unknown_order_is_dead_lettered(worker, publish, broker):
    publish(reserved(987654))
    eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1)


def test_a_batch_settles_many_orders_and_skips_a_bad_one(worker, publish, make_order, order_state, broker):
    orders = [make_order() for _ in range(5)]
    publish(*(reserved(order) for order in orders[:2]), reserved(987654), *(rejected(order) for order in orders[2:]))
    eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1)
    eventually(lambda: [order_state(order)[0] for order in orders] == ["CONFIRMED"] * 2 + ["REJECTED"] * 3)
