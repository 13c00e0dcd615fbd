"""POST /orders/{id}/cancel: the buyer's compensating step, on the orders side.
(products' side, giving the stock back, is tests/products/test_inventory.py and
test_worker.py; the whole saga through the gateway, tests/e2e/test_cancelling.py.)"""

import pytest
from sqlalchemy import update

from orders.models import Order, OutboxMessage, db

pytestmark = pytest.mark.integration

ANN = {"X-User-Id": "1"}
BOB = {"X-User-Id": "2"}


@pytest.fixture
def placed(client, make_product):
    """Factory: an order of Ann's, placed through the API; its id."""

    def _placed(quantity=2):
        product = make_product(quantity=50)
        response = client.post("/orders", json={"items": [{"product_id": product, "quantity": quantity}]}, headers=ANN)
        assert response.status_code == 201
        return response.get_json()["id"]

    return _placed


@pytest.fixture
def set_status(orders_app):
    def _set(order_id, **values):
        with orders_app.app_context():
            db.session.execute(update(Order).where(Order.id == order_id).values(**values))
            db.session.commit()

    return _set


@pytest.fixture
def cancellations(orders_app):
    def _events():
        with orders_app.app_context():
            rows = db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id))
            return [row.payload for row in rows if row.routing_key == "order.cancelled"]

    return _events


def test_a_pending_order_is_cancelled_and_announced(client, placed, cancellations):
    order_id = placed(quantity=2)

    response = client.post(f"/orders/{order_id}/cancel", headers=ANN)

    assert response.status_code == 200
    assert response.get_json()["status"] == "CANCELLED"
    assert response.get_json()["cancelled_at"]
    assert client.get(f"/orders/{order_id}", headers=ANN).get_json()["status"] == "CANCELLED"
    [event] = cancellations()
    assert (event["order_id"], event["user_id"]) == (order_id, 1)
    assert [line["quantity"] for line in event["items"]] == [2]


def test_a_confirmed_order_can_be_cancelled(client, placed, set_status, cancellations):
    order_id = placed()
    set_status(order_id, status="CONFIRMED")

    assert client.post(f"/orders/{order_id}/cancel", headers=ANN).get_json()["status"] == "CANCELLED"
    assert len(cancellations()) == 1


def test_cancelling_twice_answers_the_same_and_announces_once(client, placed, cancellations):
    order_id = placed()

    first = client.post(f"/orders/{order_id}/cancel", headers=ANN)
    second = client.post(f"/orders/{order_id}/cancel", headers=ANN)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.get_json() == second.get_json()
    assert len(cancellations()) == 1


def test_someone_elses_order_is_404_like_a_missing_one(client, placed, cancellations):
    order_id = placed()

    theirs = client.post(f"/orders/{order_id}/cancel", headers=BOB)
    missing = client.post("/orders/999999/cancel", headers=BOB)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json()
    assert client.get(f"/orders/{order_id}", headers=ANN).get_json()["status"] == "PENDING"
    assert cancellations() == []


def test_a_rejected_order_cant_be_cancelled(client, placed, set_status, cancellations):
    order_id = placed()
    set_status(order_id, status="REJECTED", reason="Not enough stock.")

    response = client.post(f"/orders/{order_id}/cancel", headers=ANN)

    assert response.status_code == 409
    assert response.get_json() == {"message": "A REJECTED order can't be cancelled."}
    assert client.get(f"/orders/{order_id}", headers=ANN).get_json()["status"] == "REJECTED"
    assert cancellations() == []


def test_an_order_from_before_cancelling_existed_cant_be_cancelled(client, placed, set_status, cancellations):
    order_id = placed()
    set_status(order_id, status="CONFIRMED", cancellable=False)

    assert client.post(f"/orders/{order_id}/cancel", headers=ANN).status_code == 409
    assert cancellations() == []


def test_cancelling_needs_an_identity(client, placed):
    assert client.post(f"/orders/{placed()}/cancel").status_code == 401
