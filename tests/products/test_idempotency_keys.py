"""POST /products with an Idempotency-Key (the mechanism is common/http/idempotency_keys.py;
tests/orders/test_idempotency_keys.py has its races)."""

import pytest

pytestmark = pytest.mark.integration

AUTH = {"X-User-Id": "7"}
PEN = {"name": "Pen", "price": 2.5, "quantity": 10}


def test_a_retried_create_makes_one_product(client):
    headers = {**AUTH, "Idempotency-Key": "pen-1"}

    first = client.post("/products", json=PEN, headers=headers)
    retry = client.post("/products", json=PEN, headers=headers)

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.data == first.data
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert client.get("/products").get_json()["total"] == 1


def test_a_key_reused_for_another_product_is_422(client):
    headers = {**AUTH, "Idempotency-Key": "pen-2"}
    client.post("/products", json=PEN, headers=headers)

    response = client.post("/products", json={**PEN, "name": "Pencil"}, headers=headers)

    assert response.status_code == 422
    assert client.get("/products").get_json()["total"] == 1


def test_an_invalid_body_keeps_no_answer(client):
    headers = {**AUTH, "Idempotency-Key": "pen-3"}

    assert client.post("/products", json={**PEN, "price": 0}, headers=headers).status_code == 422
    assert client.post("/products", json=PEN, headers=headers).status_code == 201
    assert client.get("/products").get_json()["total"] == 1
