"""The README's walkthrough (seed-architecture §6.3), step by step, through the gateway."""

import uuid

import pytest

from tests.e2e.conftest import PASSWORD
from tests.support import eventually

pytestmark = pytest.mark.e2e


def test_register_login_create_order_and_watch_stock_fall(gateway):
    email = f"engineer-{uuid.uuid4().hex[:8]}@ragworks.ai"

    # Step 1: register.
    registered = gateway.post("/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201
    assert registered.json()["email"] == email

    # Step 2: log in; the token the users service signs must pass the gateway,
    # which holds the same secret (a mismatch fails every later step).
    login = gateway.post("/token", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["token_type"] == "bearer"
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert gateway.get("/users/me", headers=auth).json()["email"] == email

    # Step 3: create a product.
    created = gateway.post(
        "/products", json={"name": "Quantum Mechanical Keyboard", "price": 249.99, "quantity": 50}, headers=auth
    )
    assert created.status_code == 201
    product = created.json()
    assert {k: product[k] for k in ("name", "price", "quantity")} == {
        "name": "Quantum Mechanical Keyboard",
        "price": 249.99,
        "quantity": 50,
    }

    # Step 4: order three.
    ordered = gateway.post("/orders", json={"items": [{"product_id": product["id"], "quantity": 3}]}, headers=auth)
    assert ordered.status_code == 201
    order = ordered.json()
    assert order["status"] == "PENDING"
    assert order["total"] == 749.97

    # Step 5: the stock falls to 47 once products-worker has handled OrderCreated.
    def stock_is_47():
        """the product's stock reaches 47"""
        return gateway.get(f"/products/{product['id']}").json()["quantity"] == 47

    eventually(stock_is_47)
    assert gateway.get(f"/orders/{order['id']}", headers=auth).json()["id"] == order["id"]
