"""Idempotency-Key through the gateway: a client that retries orders, or a
restock, once."""

import json
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import GATEWAY_URL

pytestmark = pytest.mark.e2e


@pytest.fixture
def order_for(gateway, session_user, create_product):
    """(the body of an order for a fresh product, a function listing the user's orders of it)."""
    _, auth = session_user
    product = create_product(quantity=100)["id"]

    def orders_of_it():
        listed = gateway.get("/orders?per_page=100", headers=auth).json()["items"]
        return [order["id"] for order in listed if order["items"][0]["product_id"] == product]

    return {"items": [{"product_id": product, "quantity": 1}]}, orders_of_it


def hang_up_after_sending(path: str, headers: dict, body: bytes) -> None:
    """A client whose request left but that gave up before the answer came (its timeout)."""
    address = urlsplit(GATEWAY_URL)
    lines = [f"POST {path} HTTP/1.1", f"Host: {address.netloc}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def test_a_retry_after_a_client_timeout_orders_once(gateway, session_user, order_for):
    _, auth = session_user
    body, orders_of_it = order_for
    headers = {**auth, "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}

    hang_up_after_sending("/orders", headers, json.dumps(body).encode())
    retry = gateway.post("/orders", json=body, headers=headers)

    assert retry.status_code == 201
    assert orders_of_it() == [retry.json()["id"]]
    again = gateway.post("/orders", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retry.json()


def test_concurrent_requests_with_one_key_make_one_order(gateway, session_user, order_for):
    _, auth = session_user
    body, orders_of_it = order_for
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: gateway.post("/orders", json=body, headers=headers), range(8)))

    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(orders_of_it()) == 1


def test_a_key_reused_with_another_body_is_422(gateway, session_user, order_for):
    _, auth = session_user
    body, orders_of_it = order_for
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    assert gateway.post("/orders", json=body, headers=headers).status_code == 201

    other = gateway.post("/orders", json={"items": [{**body["items"][0], "quantity": 2}]}, headers=headers)

    assert other.status_code == 422
    assert len(orders_of_it()) == 1


def test_another_users_identical_key_is_independent(gateway, session_user, make_user, order_for):
    _, auth = session_user
    _, other_auth = make_user()
    body, orders_of_it = order_for
    key = str(uuid.uuid4())

    mine = gateway.post("/orders", json=body, headers={**auth, "Idempotency-Key": key})
    theirs = gateway.post("/orders", json=body, headers={**other_auth, "Idempotency-Key": key})

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


def test_products_take_the_key_too(gateway, session_user):
    _, auth = session_user
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    body = {"name": f"Once {uuid.uuid4().hex[:6]}", "price": 5, "quantity": 1}

    first = gateway.post("/products", json=body, headers=headers)
    retry = gateway.post("/products", json=body, headers=headers)

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"


def test_a_restock_sent_twice_with_one_key_adds_once(gateway, session_user, create_product):
    _, auth = session_user
    product = create_product(quantity=5)["id"]
    headers = {**auth, "Idempotency-Key": f"restock-{uuid.uuid4()}"}

    answers = [gateway.post(f"/products/{product}/stock", json={"add": 7}, headers=headers) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert gateway.get(f"/products/{product}").json()["quantity"] == 12  # not 19
