"""The gateway's authentication contract, through port 8000 (Kong or its HAProxy stand-in)."""
import time

import jwt
import pytest

from tests.e2e.conftest import ISSUER

pytestmark = pytest.mark.e2e

PROTECTED = [("GET", "/users/me"), ("POST", "/products"), ("GET", "/orders"), ("POST", "/orders"), ("GET", "/orders/1")]


def token(secret, *, sub="1", iss=ISSUER, exp_in=300, alg="HS256", **extra):
    claims = {"sub": sub, "iss": iss, "iat": int(time.time()), **extra}
    if exp_in is not None:
        claims["exp"] = int(time.time()) + exp_in
    return jwt.encode(claims, secret, algorithm=alg)


def unsigned(claims):
    """An `alg: none` token, which pyjwt refuses to make."""
    segment = lambda data: jwt.utils.base64url_encode(jwt.api_jws.json.dumps(data).encode()).decode()  # noqa: E731
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims)}."


@pytest.mark.parametrize("method, path", PROTECTED)
def test_no_token_is_401(gateway, method, path):
    response = gateway.request(method, path, json={})
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def forged_tokens(secret):
    now = int(time.time())
    return {
        "wrong key": (token("x" * 40), "Invalid signature"),
        "alg none": (unsigned({"sub": "1", "iss": ISSUER, "exp": now + 300}), None),
        "expired": (token(secret, exp_in=-60), None),
        "unknown issuer": (token(secret, iss="someone-else"), None),
        "HS512": (token(secret, alg="HS512"), None),
        "no exp": (token(secret, exp_in=None), None),
        "exp beyond the maximum lifetime": (token(secret, exp_in=7 * 24 * 3600), None),
    }


@pytest.mark.parametrize(
    "case",
    ["wrong key", "alg none", "expired", "unknown issuer", "HS512", "no exp", "exp beyond the maximum lifetime"],
)
def test_forged_tokens_are_401(gateway, jwt_secret, case):
    bad, message = forged_tokens(jwt_secret)[case]
    response = gateway.get("/users/me", headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    if message:
        assert response.json()["message"] == message


def test_tokens_in_the_query_string_are_ignored(gateway, make_user):
    _, auth = make_user()
    raw = auth["Authorization"].removeprefix("Bearer ")
    assert gateway.get(f"/users/me?jwt={raw}").status_code == 401


def test_a_valid_token_names_the_user(gateway, make_user):
    user_id, auth = make_user()
    me = gateway.get("/users/me", headers=auth)
    assert me.status_code == 200 and me.json()["id"] == user_id


def test_client_sent_user_id_is_replaced(gateway, make_user, make_product):
    ann_id, ann = make_user()
    bob_id, bob = make_user()
    # Ann claims to be Bob: the gateway overwrites the header with her token's sub.
    assert gateway.get("/users/me", headers={**ann, "X-User-Id": str(bob_id)}).json()["id"] == ann_id
    product = make_product()
    order = gateway.post(
        "/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}, headers={**ann, "X-User-Id": str(bob_id)}
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
