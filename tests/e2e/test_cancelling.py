"""Cancelling orders through the gateway: the saga's compensation, with the races
it has to win. Each test restores what it stopped, even when it fails."""

import json

import pytest

from common.events import contracts
from common.messaging.event import payload
from tests.support import eventually

pytestmark = pytest.mark.e2e

MAX_STOCK = 2**31 - 1  # the most a product may be created or restocked to (products/schemas.py)


def test_a_confirmed_order_cancelled_gives_its_stock_back(shop):
    product = shop.create_product(quantity=10)["id"]
    order_id = shop.order(product, 3)
    assert shop.settle([order_id]) == {order_id: "CONFIRMED"}
    assert shop.stock(product) == 7

    cancelled = shop.cancel(order_id)

    assert cancelled["status"] == "CANCELLED" and cancelled["cancelled_at"]
    eventually(lambda: shop.stock(product) == 10)
    assert shop.statuses([order_id]) == {order_id: "CANCELLED"}


def test_a_cancel_gives_stock_back_on_top_of_a_full_shelf_and_loses_no_other_line(
    shop, gateway, session_user, make_user
):
    # Issue 16's reproduction: X at the API's maximum stock, an order of 1 X and
    # 3 of another seller's B, X restocked by 1, the order cancelled. Giving X's
    # unit back overflowed products.quantity (INTEGER), the whole return rolled
    # back, the event was dead-lettered, and B's 3 units never came back.
    _, auth = session_user
    _, seller = make_user()
    full = shop.create_product(quantity=MAX_STOCK)["id"]
    other = gateway.post("/products", json={"name": "B", "price": 1, "quantity": 10}, headers=seller).json()["id"]
    lines = [{"product_id": full, "quantity": 1}, {"product_id": other, "quantity": 3}]
    order_id = gateway.post("/orders", json={"items": lines}, headers=auth).json()["id"]
    assert shop.settle([order_id]) == {order_id: "CONFIRMED"}
    restocked = gateway.post(f"/products/{full}/stock", json={"add": 1}, headers=auth)
    assert restocked.status_code == 200 and restocked.json()["quantity"] == MAX_STOCK

    shop.cancel(order_id)

    eventually(lambda: (shop.stock(full), shop.stock(other)) == (MAX_STOCK + 1, 10), deadline=30, interval=0.25)


def test_cancelling_twice_answers_the_same(shop):
    product = shop.create_product(quantity=10)["id"]
    order_id = shop.order(product, 2)

    assert shop.cancel(order_id) == shop.cancel(order_id)
    eventually(lambda: shop.statuses([order_id]) == {order_id: "CANCELLED"})


def test_only_the_buyer_can_cancel_others_get_404(shop, gateway, make_user):
    product = shop.create_product(quantity=10)["id"]
    order_id = shop.order(product)
    _, stranger = make_user()

    theirs = gateway.post(f"/orders/{order_id}/cancel", headers=stranger)
    missing = gateway.post("/orders/999999999/cancel", headers=stranger)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert shop.settle([order_id]) == {order_id: "CONFIRMED"}


def test_a_rejected_order_cant_be_cancelled(shop, gateway, session_user, stack):
    product = shop.create_product(quantity=1)["id"]
    stack.stop("products-worker")
    try:
        orders = [shop.order(product), shop.order(product)]  # both pass the check; one unit
    finally:
        stack.start("products-worker")

    response = gateway.post(f"/orders/{shop.rejected_of_two(orders)}/cancel", headers=session_user[1])

    assert response.status_code == 409
    assert response.json()["message"] == "A REJECTED order can't be cancelled."
    assert shop.stock(product) == 0


def test_orders_cancelled_while_their_reservation_is_in_flight_leave_the_stock_whole(shop):
    # Cancelled the moment they are accepted: some OrderCreated are still queued,
    # some reserved already. Either way nothing is lost and nothing doubled.
    product = shop.create_product(quantity=100)["id"]
    order_ids = []
    for _ in range(20):
        order_ids.append(shop.order(product, 2))
        shop.cancel(order_ids[-1])

    assert set(shop.settle(order_ids).values()) == {"CANCELLED"}
    eventually(lambda: shop.stock(product) == 100, deadline=30)


def test_an_order_cancelled_while_the_worker_is_down_never_takes_stock(shop, stack):
    product = shop.create_product(quantity=10)["id"]
    stack.stop("products-worker")
    try:
        order_id = shop.order(product, 4)
        assert shop.cancel(order_id)["status"] == "CANCELLED"
    finally:
        stack.start("products-worker")
    kept = shop.order(product, 1)  # handled after both of the cancelled order's events

    assert shop.settle([kept]) == {kept: "CONFIRMED"}
    assert shop.stock(product) == 9
    assert shop.statuses([order_id]) == {order_id: "CANCELLED"}


def test_a_duplicate_cancellation_gives_the_stock_back_once(shop, stack, session_user):
    """OrderCancelled delivered again, as a new message (a relay that republished
    after a lost confirm): products' record of the order makes it a no-op."""
    user_id, _ = session_user
    product = shop.create_product(quantity=10)["id"]
    order_id = shop.order(product, 3)
    assert shop.settle([order_id]) == {order_id: "CONFIRMED"}
    shop.cancel(order_id)
    eventually(lambda: shop.stock(product) == 10)

    again = contracts.ORDER_CANCELLED.new(
        order_id=order_id, user_id=user_id, items=[{"product_id": product, "quantity": 3}]
    )
    for _ in range(2):
        stack.publish_raw("order.cancelled", json.dumps(payload(again)).encode(), "application/json")
    later = shop.order(product, 1)  # products-worker handles it after the copies

    assert shop.settle([later]) == {later: "CONFIRMED"}
    assert shop.stock(product) == 9
