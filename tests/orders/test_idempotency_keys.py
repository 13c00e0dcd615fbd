"""POST /orders with an Idempotency-Key: one order however often it is sent."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from orders.models import Order, db

pytestmark = pytest.mark.integration

ANN = {"X-User-Id": "1"}
BOB = {"X-User-Id": "2"}


def order_count(orders_app, user_id=None) -> int:
    with orders_app.app_context():
        query = db.select(db.func.count()).select_from(Order)
        if user_id is not None:
            query = query.where(Order.user_id == user_id)
        return db.session.scalar(query)


@pytest.fixture
def body(make_product):
    return {"items": [{"product_id": make_product(quantity=50), "quantity": 2}]}


def test_a_retry_answers_the_first_answer_and_orders_once(client, body, orders_app):
    headers = {**ANN, "Idempotency-Key": "order-1"}

    first = client.post("/orders", json=body, headers=headers)
    retry = client.post("/orders", json=body, headers=headers)

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.data == first.data
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert order_count(orders_app) == 1


def test_the_drafts_quoted_form_is_the_same_key(client, body, orders_app):
    client.post("/orders", json=body, headers={**ANN, "Idempotency-Key": "k-7"})
    retry = client.post("/orders", json=body, headers={**ANN, "Idempotency-Key": '"k-7"'})

    assert retry.headers["Idempotent-Replayed"] == "true"
    assert order_count(orders_app) == 1


def test_concurrent_requests_with_one_key_make_one_order(orders_app, clean_orders, body):
    headers = {**ANN, "Idempotency-Key": "together"}
    start = threading.Barrier(8)

    def send(_):
        start.wait()
        return orders_app.test_client().post("/orders", json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, range(8)))

    # The duplicates waited for the first and answer what it answered.
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.get_json()["id"] for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 7
    assert order_count(orders_app) == 1


def test_a_key_reused_for_another_body_is_422(client, body, orders_app):
    headers = {**ANN, "Idempotency-Key": "reused"}
    client.post("/orders", json=body, headers=headers)
    other = {"items": [{**body["items"][0], "quantity": 3}]}

    response = client.post("/orders", json=other, headers=headers)

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["message"]
    assert order_count(orders_app) == 1


def test_another_users_identical_key_is_another_key(client, body, orders_app):
    ann = client.post("/orders", json=body, headers={**ANN, "Idempotency-Key": "same"})
    bob = client.post("/orders", json=body, headers={**BOB, "Idempotency-Key": "same"})

    assert (ann.status_code, bob.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in bob.headers
    assert ann.get_json()["id"] != bob.get_json()["id"]
    assert (order_count(orders_app, 1), order_count(orders_app, 2)) == (1, 1)


def test_without_a_key_every_post_is_an_order(client, body, orders_app):
    client.post("/orders", json=body, headers=ANN)
    client.post("/orders", json=body, headers=ANN)

    assert order_count(orders_app) == 2


def test_a_failed_request_keeps_no_answer_and_a_retry_runs_anew(client, make_product, orders_app):
    product = make_product(quantity=1)
    body = {"items": [{"product_id": product, "quantity": 2}]}
    headers = {**ANN, "Idempotency-Key": "after-409"}

    assert client.post("/orders", json=body, headers=headers).status_code == 409
    # Nothing was stored for the key: the same request is tried again, not replayed.
    again = client.post("/orders", json=body, headers=headers)

    assert again.status_code == 409
    assert "Idempotent-Replayed" not in again.headers
    assert order_count(orders_app) == 0


def test_an_expired_key_is_a_new_key(orders_app, client, body):
    headers = {**ANN, "Idempotency-Key": "old"}
    first = client.post("/orders", json=body, headers=headers)
    with orders_app.app_context():
        db.session.execute(text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"))
        db.session.commit()

    again = client.post("/orders", json=body, headers=headers)

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first.get_json()["id"]


@pytest.mark.parametrize("key", ["", '""', "x" * 256, "has space", "caf\u00e9", 'in"side'])
def test_a_malformed_key_is_400(client, body, orders_app, key):
    response = client.post("/orders", json=body, headers={**ANN, "Idempotency-Key": key})

    assert response.status_code == 400
    assert "Idempotency-Key" in response.get_json()["message"]
    assert order_count(orders_app) == 0


def test_a_duplicate_that_waits_too_long_is_409_with_retry_after(orders_app, client, body, monkeypatch):
    """A first request that holds the key for longer than the wait: the duplicate
    gets 409 and Retry-After, and nothing is written for it."""
    import dataclasses

    settings = orders_app.config["SETTINGS"]
    monkeypatch.setitem(orders_app.config, "SETTINGS", dataclasses.replace(settings, idempotency_wait_seconds=0.3))
    engine = create_engine(orders_app.config["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as holder:
        # What a first request does while it runs: the key inserted, not yet committed.
        holder.execute(
            text("INSERT INTO idempotency_keys (user_id, key, fingerprint, headers) VALUES (1, 'held', 'x', '{}')")
        )
        response = client.post("/orders", json=body, headers={**ANN, "Idempotency-Key": "held"})
        holder.rollback()
    engine.dispose()

    assert response.status_code == 409
    assert response.headers["Retry-After"] == "1"
    assert order_count(orders_app) == 0


def test_the_header_is_documented(client):
    operation = client.get("/openapi/orders.json").get_json()["paths"]["/orders"]["post"]

    assert "Idempotency-Key" in [parameter["name"] for parameter in operation["parameters"]]
