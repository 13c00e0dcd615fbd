"""A hostile client against the whole system, through the gateway: forged
headers, forged tokens, injection and traversal strings, broken bodies. Every
case asserts the exact status, and that nothing changed that shouldn't have."""

import time
import uuid

import jwt
import pytest

from tests.e2e.conftest import ISSUER, PASSWORD, PROTECTED
from tests.e2e.errors import assert_error

pytestmark = pytest.mark.e2e

FORGED_IDENTITY = {
    "X-User-Id": "1",
    "X-Consumer-Id": "00000000-0000-0000-0000-000000000001",
    "X-Consumer-Username": "users-service",
    "X-Credential-Identifier": ISSUER,
    "X-Anonymous-Consumer": "false",
}
SQL_INJECTION = ["' OR '1'='1", "1; DROP TABLE products; --", '" OR ""="', "1 UNION SELECT password_hash FROM users"]
TRAVERSAL = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd\x00.json"]


@pytest.fixture
def state(gateway, session_user):
    """What a failed attack must leave unchanged: the catalog's size, the user's orders."""
    _, auth = session_user

    def _state():
        return (
            gateway.get("/products").json()["total"],
            gateway.get("/orders", headers=auth).json()["total"],
        )

    return _state


@pytest.fixture
def product(gateway, session_user):
    _, auth = session_user
    return gateway.post("/products", json={"name": "Target", "price": 10, "quantity": 5}, headers=auth).json()


def forged_tokens(secret):
    now = int(time.time())
    good = {"sub": "1", "iss": ISSUER, "iat": now, "exp": now + 300}

    def unsigned(claims):
        segment = lambda data: jwt.utils.base64url_encode(jwt.api_jws.json.dumps(data).encode()).decode()  # noqa: E731
        return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims)}."

    return {
        "alg none": unsigned(good),
        "HS512": jwt.encode(good, secret, algorithm="HS512"),
        "wrong key": jwt.encode(good, "another-secret-that-is-long-enough-0123456789", algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in good.items() if k != "exp"}, secret, algorithm="HS256"),
        "far-future exp": jwt.encode({**good, "exp": now + 10 * 365 * 86400}, secret, algorithm="HS256"),
        "expired": jwt.encode({**good, "exp": now - 1}, secret, algorithm="HS256"),
        "another issuer": jwt.encode({**good, "iss": "evil"}, secret, algorithm="HS256"),
        "garbage": "not.a.token",
    }


def body_for(method, path):
    if path == "/products" and method == "POST":
        return {"name": "Forged", "price": 1, "quantity": 1}
    if path == "/orders" and method == "POST":
        return {"items": [{"product_id": 1, "quantity": 1}]}
    if method == "PATCH":
        return {"price": 1}
    if path.endswith("/stock"):
        return {"add": 1}
    if path in ("/register", "/token"):
        return {"email": f"x-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
    return None


# -- identity and tokens ---------------------------------------------------------------


@pytest.mark.parametrize("method, path", PROTECTED)
def test_forged_identity_headers_without_a_token_are_401(gateway, state, method, path):
    before = state()
    response = gateway.request(method, path, json=body_for(method, path), headers=FORGED_IDENTITY)
    assert_error(response, 401, "Unauthorized")
    assert state() == before


@pytest.mark.parametrize("method, path", [("GET", "/products"), ("GET", "/products/1")])
def test_forged_identity_headers_change_nothing_on_public_routes(gateway, method, path):
    plain = gateway.request(method, path)
    forged = gateway.request(method, path, headers=FORGED_IDENTITY)
    assert forged.status_code == plain.status_code
    assert forged.json() == plain.json()


def test_forged_identity_with_a_real_token_is_the_token_owner(gateway, make_user):
    ann_id, ann = make_user()
    me = gateway.get("/users/me", headers={**ann, **FORGED_IDENTITY, "X-User-Id": str(ann_id + 1)})
    assert me.json()["id"] == ann_id


@pytest.mark.parametrize("kind", list(forged_tokens("x" * 64)))
@pytest.mark.parametrize("method, path", PROTECTED)
def test_forged_tokens_are_401_on_every_protected_route(gateway, stack_jwt_secret, state, kind, method, path):
    before = state()
    token = forged_tokens(stack_jwt_secret)[kind]
    response = gateway.request(method, path, json=body_for(method, path), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert state() == before


def test_a_token_signed_with_another_key_is_an_invalid_signature(gateway, stack_jwt_secret):
    token = forged_tokens(stack_jwt_secret)["wrong key"]
    response = gateway.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "Invalid signature")


@pytest.mark.parametrize("method, path", PROTECTED)
def test_tokens_in_query_strings_are_ignored(gateway, session_user, state, method, path):
    before = state()
    token = session_user[1]["Authorization"].removeprefix("Bearer ")
    response = gateway.request(method, f"{path}?jwt={token}", json=body_for(method, path))
    assert response.status_code == 401
    assert state() == before


# -- injection and traversal ------------------------------------------------------------


@pytest.mark.parametrize("attack", SQL_INJECTION + TRAVERSAL)
def test_hostile_strings_as_emails_are_422(gateway, attack):
    response = gateway.post("/register", json={"email": attack, "password": PASSWORD})
    assert response.status_code == 422
    assert "email" in response.json()["errors"]


@pytest.mark.parametrize("attack", SQL_INJECTION + TRAVERSAL[:2])
def test_hostile_strings_log_nobody_in(gateway, attack):
    response = gateway.post("/token", json={"email": attack, "password": attack})
    assert response.status_code == 401
    assert response.json() == {"message": "Wrong email or password."}


def test_quotes_in_real_data_are_just_data(gateway):
    # Valid emails and passwords may contain quotes: they are stored and compared as data.
    email = f"o'reilly-{uuid.uuid4().hex[:6]}@example.com"
    password = "pass'; DROP TABLE users; --"
    assert gateway.post("/register", json={"email": email, "password": password}).status_code == 201
    assert gateway.post("/token", json={"email": email, "password": password}).status_code == 200
    assert gateway.post("/token", json={"email": email, "password": "' OR '1'='1"}).status_code == 401


@pytest.mark.parametrize("attack", SQL_INJECTION + TRAVERSAL[:2])
def test_hostile_product_names_are_stored_verbatim(gateway, session_user, attack):
    created = gateway.post("/products", json={"name": attack, "price": 1, "quantity": 1}, headers=session_user[1])
    assert created.status_code == 201
    assert gateway.get(f"/products/{created.json()['id']}").json()["name"] == attack


@pytest.mark.parametrize("attack", SQL_INJECTION + TRAVERSAL)
@pytest.mark.parametrize(
    "make_body",
    [
        lambda a: {"items": [{"product_id": a, "quantity": 1}]},
        lambda a: {"items": [{"product_id": 1, "quantity": a}]},
        lambda a: {"items": a},
        lambda a: {"items": [{"product_id": 1, "quantity": 1}], a: 1},
    ],
    ids=["product_id", "quantity", "items", "extra field"],
)
def test_hostile_order_fields_are_422(gateway, session_user, state, attack, make_body):
    before = state()
    response = gateway.post("/orders", json=make_body(attack), headers=session_user[1])
    assert response.status_code == 422
    assert state() == before


@pytest.mark.parametrize("attack", SQL_INJECTION + TRAVERSAL[:2] + ["1_000", " 5", "\u0662", "+2", "2.0"])
@pytest.mark.parametrize("param", ["page", "per_page"])
def test_hostile_query_parameters_are_422(gateway, attack, param):
    response = gateway.get("/products", params={param: attack})
    assert response.status_code == 422
    assert param in response.json()["errors"]


@pytest.mark.parametrize(
    "path",
    [
        "/products/1%20OR%201=1",
        "/orders/1;DROP",
        f"/products/{2**64}",
        "/products/-1",
        "/products/1.0",
    ],
)
def test_hostile_paths_are_404(gateway, session_user, path):
    response = gateway.get(path, headers=session_user[1])
    assert response.status_code == 404
    assert "message" in response.json()


def test_a_path_that_climbs_out_of_the_root_is_400(gateway, session_user):
    # nginx decodes %2F and resolves the dot segments; above the root it is a bad
    # request (ngx_http_parse.c), answered before any route (test_edge_http.py).
    response = gateway.get("/products/..%2F..%2Fetc%2Fpasswd", headers=session_user[1])
    assert response.status_code == 400
    assert response.json()["message"] == "Bad request"


# -- broken bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, content_type, status",
    [
        (b"{not json", "application/json", 400),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", 400),  # deeper than Python recurses, under 64 KiB
        (b'{"name": ' + b"9" * 5000 + b"}", "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        (b"name=Pen&price=1&quantity=1", "application/x-www-form-urlencoded", 415),
        (b"<product/>", "application/xml", 415),
        (b"", "application/json", 422),
        (b"[]", "application/json", 422),
        (b'"a string"', "application/json", 422),
    ],
)
def test_broken_bodies_get_a_clear_error(gateway, session_user, state, data, content_type, status):
    before = state()
    response = gateway.post("/products", data=data, headers={**session_user[1], "Content-Type": content_type})
    assert response.status_code == status
    assert "message" in response.json()
    assert state() == before


@pytest.mark.parametrize(
    "name",
    ["nul\u0000byte", "lone \ud800 surrogate", "escape \u001b[2J", "x" * 201, "", "   "],
    ids=["NUL", "surrogate", "control", "too long", "empty", "blank"],
)
def test_unusable_names_are_422(gateway, session_user, state, name):
    before = state()
    body = f'{{"name": {jwt.api_jws.json.dumps(name)}, "price": 1, "quantity": 1}}'  # keeps \ud800 escaped
    response = gateway.post(
        "/products", data=body.encode(), headers={**session_user[1], "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "name" in response.json()["errors"]
    assert state() == before


@pytest.mark.parametrize(
    "fields",
    [
        {"price": 1e308},
        {"price": -0.01},
        {"price": "12.345"},
        {"quantity": 10**30},
        {"quantity": -1},
        {"quantity": True},
        # Numbers are JSON numbers: int() and Decimal() would read each of these strings.
        {"price": "12.34"},
        {"price": "1_000"},
        {"price": " 5 "},
        {"quantity": "\u0661\u0662"},
        {"quantity": "3"},
    ],
)
def test_absurd_numbers_are_422(gateway, session_user, state, fields):
    before = state()
    body = {"name": "Pen", "price": 1, "quantity": 1, **fields}
    response = gateway.post("/products", json=body, headers=session_user[1])
    assert response.status_code == 422
    assert set(fields) <= set(response.json()["errors"])
    assert state() == before


def test_empty_and_duplicate_order_lines_are_422(gateway, session_user, product, state):
    before = state()
    line = {"product_id": product["id"], "quantity": 1}
    for items in ([], [line, line]):
        response = gateway.post("/orders", json={"items": items}, headers=session_user[1])
        assert response.status_code == 422
    assert state() == before


def test_unknown_methods_are_404_json(gateway, session_user):
    # PATCH /products/1 is a route (changing a product); PATCH /orders/1 isn't.
    for method, path in [("PUT", "/products/1"), ("DELETE", "/products/1"), ("PATCH", "/orders/1")]:
        response = gateway.request(method, path, headers=session_user[1])
        assert response.status_code == 404
        assert "message" in response.json()


def test_an_order_whose_total_is_too_large_to_store_is_422_not_500(gateway, session_user, create_product):
    # 101 units at the largest price a product may have: more than an order's
    # total column holds (NUMERIC(14, 2)); PostgreSQL's overflow was a 500.
    _, auth = session_user
    product = create_product(price=9999999999.99, quantity=1000)["id"]

    response = gateway.post("/orders", json={"items": [{"product_id": product, "quantity": 101}]}, headers=auth)

    assert response.status_code == 422, response.text
    assert "more than the shop takes in one order" in response.json()["message"]
    assert gateway.get(f"/products/{product}").json()["quantity"] == 1000
