"""POST /products and POST /products/{id}/stock with an Idempotency-Key (the
mechanism is common/http/idempotency_keys.py; tests/orders/test_idempotency_keys.py
has its races)."""

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


def restock(client, product_id, add, key):
    return client.post(f"/products/{product_id}/stock", json={"add": add}, headers={**AUTH, "Idempotency-Key": key})


def test_a_retried_restock_adds_once(client):
    product_id = client.post("/products", json={**PEN, "quantity": 5}, headers=AUTH).get_json()["id"]

    first = restock(client, product_id, 7, "restock-1")
    retry = restock(client, product_id, 7, "restock-1")

    # Without the key's record, the retry added again: 5 + 7 + 7 = 19.
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.data == first.data and first.get_json()["quantity"] == 12
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert client.get(f"/products/{product_id}").get_json()["quantity"] == 12


def test_a_restock_key_reused_for_another_amount_or_product_is_422(client):
    pen = client.post("/products", json=PEN, headers=AUTH).get_json()["id"]
    pencil = client.post("/products", json={**PEN, "name": "Pencil"}, headers=AUTH).get_json()["id"]
    assert restock(client, pen, 1, "restock-2").status_code == 200

    assert restock(client, pen, 2, "restock-2").status_code == 422
    assert restock(client, pencil, 1, "restock-2").status_code == 422
    assert client.get(f"/products/{pen}").get_json()["quantity"] == 11
    assert client.get(f"/products/{pencil}").get_json()["quantity"] == 10


def test_a_refused_restock_keeps_no_answer(client):
    product_id = client.post("/products", json=PEN, headers=AUTH).get_json()["id"]

    assert restock(client, product_id, 0, "restock-3").status_code == 422
    assert restock(client, product_id, 3, "restock-3").status_code == 200
    assert client.get(f"/products/{product_id}").get_json()["quantity"] == 13
