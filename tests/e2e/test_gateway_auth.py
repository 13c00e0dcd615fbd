"""The gateway's authentication contract, through port 8000 (Kong).

Forged tokens of every kind and tokens in query strings, on every protected route:
test_hostile_clients.py."""

import pytest

from tests.e2e.conftest import PROTECTED
from tests.e2e.errors import assert_error

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("method, path", PROTECTED)
def test_no_token_is_401(gateway, method, path):
    response = gateway.request(method, path, json={})
    assert_error(response, 401, "Unauthorized")


def test_a_valid_token_names_the_user(gateway, make_user):
    user_id, auth = make_user()
    me = gateway.get("/users/me", headers=auth)
    assert me.status_code == 200 and me.json()["id"] == user_id


def test_client_sent_user_id_is_replaced(gateway, make_user, create_product):
    ann_id, ann = make_user()
    bob_id, bob = make_user()
    # Ann claims to be Bob: the gateway overwrites the header with her token's sub.
    assert gateway.get("/users/me", headers={**ann, "X-User-Id": str(bob_id)}).json()["id"] == ann_id
    product = create_product()
    order = gateway.post(
        "/orders",
        json={"items": [{"product_id": product["id"], "quantity": 1}]},
        headers={**ann, "X-User-Id": str(bob_id)},
    ).json()
    assert gateway.get(f"/orders/{order['id']}", headers=ann).status_code == 200
    assert gateway.get(f"/orders/{order['id']}", headers=bob).status_code == 404
    assert order["id"] not in [o["id"] for o in gateway.get("/orders", headers=bob).json()["items"]]


def test_client_sent_user_id_without_a_token_is_not_enough(gateway, make_user):
    user_id, _ = make_user()
    assert gateway.get("/users/me", headers={"X-User-Id": str(user_id)}).status_code == 401


def test_unknown_routes_are_json_404(gateway):
    for method, path in [("GET", "/nowhere"), ("DELETE", "/products/1"), ("GET", "/products/abc")]:
        response = gateway.request(method, path)
        assert response.status_code == 404
        assert "message" in response.json()
