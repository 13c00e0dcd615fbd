"""Restocking and changing products through the gateway: the creator only,
If-Match against lost updates, and orders keep the price they were placed at."""

import pytest

from tests.support import eventually

pytestmark = pytest.mark.e2e


def test_restock_adds_while_orders_take(shop, gateway, session_user):
    _, auth = session_user
    product = shop.create_product(quantity=5)["id"]
    order_id = shop.order(product, 5)

    restocked = gateway.post(f"/products/{product}/stock", json={"add": 10}, headers=auth)

    assert restocked.status_code == 200
    assert shop.settle([order_id]) == {order_id: "CONFIRMED"}
    eventually(lambda: shop.stock(product) == 10)


def test_a_price_change_needs_the_current_etag_and_spares_placed_orders(shop, gateway, session_user):
    _, auth = session_user
    product = shop.create_product(quantity=10)
    order_id = shop.order(product["id"], 2)
    tag = gateway.get(f"/products/{product['id']}").headers["ETag"]

    missing = gateway.request("PATCH", f"/products/{product['id']}", json={"price": 1.5}, headers=auth)
    changed = gateway.request(
        "PATCH", f"/products/{product['id']}", json={"price": 1.5}, headers={**auth, "If-Match": tag}
    )
    stale = gateway.request(
        "PATCH", f"/products/{product['id']}", json={"price": 2.5}, headers={**auth, "If-Match": tag}
    )

    assert (missing.status_code, changed.status_code, stale.status_code) == (428, 200, 412)
    assert changed.headers["ETag"] != tag
    assert gateway.get(f"/products/{product['id']}").json()["price"] == 1.5
    placed = gateway.get(f"/orders/{order_id}", headers=auth).json()
    assert placed["items"][0]["unit_price"] == product["price"]
    assert placed["total"] == round(product["price"] * 2, 2)


def test_only_the_creator_changes_a_product_others_get_403(shop, gateway, make_user):
    product = shop.create_product(quantity=10)["id"]
    tag = gateway.get(f"/products/{product}").headers["ETag"]
    _, stranger = make_user()

    patched = gateway.request("PATCH", f"/products/{product}", json={"price": 1}, headers={**stranger, "If-Match": tag})
    restocked = gateway.post(f"/products/{product}/stock", json={"add": 1}, headers=stranger)

    assert (patched.status_code, restocked.status_code) == (403, 403)
    assert shop.stock(product) == 10
