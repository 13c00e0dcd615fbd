"""The HAProxy generated from kong.yml answers as Kong's jwt plugin and router do.

A real HAProxy runs the generated config in front of echo servers, which reply
with the request they got, so each test sees both what the client got back and
what reached the service.
"""

import base64
import json
import time

import pytest
import requests

from tests.gateway.conftest import echo_server

pytestmark = pytest.mark.integration

PROTECTED = [  # (method, path, service) for every route with the jwt plugin
    ("GET", "/users/me", "users"),
    ("POST", "/products", "products"),
    ("GET", "/orders", "orders"),
    ("POST", "/orders", "orders"),
    ("GET", "/orders/7", "orders"),
    ("POST", "/orders/7/cancel", "orders"),
    ("PATCH", "/products/1", "products"),
    ("POST", "/products/1/stock", "products"),
]
PUBLIC = [
    ("POST", "/register", "users"),
    ("POST", "/token", "users"),
    ("GET", "/products", "products"),
    ("GET", "/products/1", "products"),
    ("GET", "/docs", "users"),
    ("GET", "/docs/swagger-ui-bundle.js", "users"),
]
ISSUER = "shop-users"  # kong.yml's jwt_secrets key
TIMEOUT = 5


def call(haproxy_gateway: str, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, haproxy_gateway + path, headers=headers, timeout=TIMEOUT, **kwargs)


def upstream_headers(response: requests.Response, name: str) -> list[str]:
    """Every value of header `name` that reached the echo server."""
    assert response.status_code == 200, response.text
    return [value for key, value in response.json()["headers"] if key.lower() == name.lower()]


def assert_json_error(response: requests.Response, status: int, body: dict) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == body


def unsigned(header: dict, claims: dict) -> str:
    def encode(part: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    return f"{encode(header)}.{encode(claims)}."


# -- the jwt plugin -------------------------------------------------------------------


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_a_valid_token_reaches_the_service_with_its_sub_as_user_id(haproxy_gateway, make_token, method, path, service):
    response = call(haproxy_gateway, method, path, make_token(sub="42"))

    assert response.json()["service"] == service
    assert response.json()["path"] == path
    assert upstream_headers(response, "X-User-Id") == ["42"]
    assert upstream_headers(response, "X-Consumer-Username") == ["users-service"]
    assert upstream_headers(response, "X-Credential-Identifier") == [ISSUER]


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_no_token_is_unauthorized(haproxy_gateway, method, path, service):
    response = call(haproxy_gateway, method, path)

    assert_json_error(response, 401, {"message": "Unauthorized"})
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "claims, body",
    [
        ({"exp": int(time.time()) - 1}, {"exp": "token expired"}),
        ({"exp": None}, {"exp": "must be a number"}),
        ({"exp": int(time.time()) + 3600}, {"exp": "exceeds maximum allowed expiration"}),
        ({"iss": "somebody-else"}, {"message": "No credentials found for given 'iss'"}),
        ({"iss": None}, {"message": "No mandatory 'iss' in claims"}),
        ({"iss": ""}, {"message": "Invalid 'iss' in claims"}),
    ],
    ids=["expired", "no-exp", "exp-beyond-maximum", "unknown-iss", "no-iss", "empty-iss"],
)
def test_a_token_with_bad_claims_is_refused_as_kong_does(haproxy_gateway, make_token, claims, body):
    response = call(haproxy_gateway, "GET", "/users/me", make_token(**claims))

    assert_json_error(response, 401, body)
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_token_signed_with_another_secret_has_an_invalid_signature(haproxy_gateway, make_token):
    token = make_token(secret="not-the-secret-but-at-least-32-bytes-long")

    assert_json_error(call(haproxy_gateway, "GET", "/orders", token), 401, {"message": "Invalid signature"})


def test_a_token_with_a_tampered_payload_has_an_invalid_signature(haproxy_gateway, make_token):
    header, _, signature = make_token(sub="42").split(".")
    forged_claims = make_token(sub="1").split(".")[1]

    response = call(haproxy_gateway, "GET", "/orders", f"{header}.{forged_claims}.{signature}")

    assert_json_error(response, 401, {"message": "Invalid signature"})


def test_a_token_signed_with_another_algorithm_is_refused(haproxy_gateway, make_token):
    # Same secret, but the credential says HS256: Kong checks alg before the signature.
    token = make_token(algorithm="HS512")

    assert_json_error(call(haproxy_gateway, "GET", "/orders", token), 401, {"message": "Invalid algorithm"})


def test_an_unsigned_token_is_refused(haproxy_gateway):
    # No signature at all: not a compact JWS, by the bearer token contract.
    token = unsigned({"alg": "none", "typ": "JWT"}, {"iss": ISSUER, "sub": "42", "exp": int(time.time()) + 300})

    assert_json_error(call(haproxy_gateway, "GET", "/orders", token), 401, {"message": "Bad token; invalid JSON"})


def test_a_token_naming_an_algorithm_kong_doesnt_know_is_refused(haproxy_gateway):
    # Kong's parser doesn't know alg "none": the token fails to decode.
    token = unsigned({"alg": "none", "typ": "JWT"}, {"iss": ISSUER, "sub": "42", "exp": int(time.time()) + 300})

    assert_json_error(
        call(haproxy_gateway, "GET", "/orders", token + "c2ln"), 401, {"message": "Bad token; invalid alg"}
    )


def test_something_that_is_no_jwt_is_a_bad_token(haproxy_gateway):
    assert_json_error(call(haproxy_gateway, "GET", "/orders", "not-a-jwt"), 401, {"message": "Bad token; invalid JSON"})


def test_a_token_in_the_query_string_is_not_accepted(haproxy_gateway, make_token):
    response = call(haproxy_gateway, "GET", f"/users/me?jwt={make_token()}")

    assert_json_error(response, 401, {"message": "Unauthorized"})


def test_a_token_in_another_scheme_is_not_accepted(haproxy_gateway, make_token):
    response = call(haproxy_gateway, "GET", "/users/me", headers={"Authorization": f"Token {make_token()}"})

    assert_json_error(response, 401, {"message": "Unauthorized"})


def test_a_numeric_sub_is_passed_on_exactly(haproxy_gateway, make_token):
    response = call(haproxy_gateway, "GET", "/users/me", make_token(sub=12345678901))

    assert upstream_headers(response, "X-User-Id") == ["12345678901"]


# -- X-User-Id and the other identity headers -----------------------------------------


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_a_client_sent_user_id_is_dropped_on_public_routes(haproxy_gateway, method, path, service):
    response = call(haproxy_gateway, method, path, headers={"X-User-Id": "1", "X_User_Id": "1"}, json={})

    assert response.json()["service"] == service
    assert upstream_headers(response, "X-User-Id") == []
    assert upstream_headers(response, "X_User_Id") == []


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_a_valid_token_on_a_public_route_sets_no_user_id(haproxy_gateway, make_token, method, path, service):
    # Kong's jwt plugin doesn't run there, so nothing is verified and nothing set.
    response = call(haproxy_gateway, method, path, make_token(sub="42"), json={})

    assert upstream_headers(response, "X-User-Id") == []


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_a_client_sent_user_id_is_replaced_on_protected_routes(haproxy_gateway, make_token, method, path, service):
    spoofed = {"X-User-Id": "1", "X-Consumer-Username": "admin", "X-Consumer-ID": "admin"}

    response = call(haproxy_gateway, method, path, make_token(sub="42"), headers=spoofed)

    assert upstream_headers(response, "X-User-Id") == ["42"]
    assert upstream_headers(response, "X-Consumer-Username") == ["users-service"]
    assert upstream_headers(response, "X-Consumer-ID") == []


def test_the_service_sees_its_own_address_as_host(haproxy_gateway, echo_upstreams):
    response = call(haproxy_gateway, "GET", "/products")

    assert upstream_headers(response, "Host") == [echo_upstreams["products"]]


# -- routing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/nowhere"),
        ("GET", "/"),
        ("GET", "/products/abc"),  # products-read takes digits only
        ("GET", "/products/1/extra"),  # regex paths are anchored at the end too ($)
        ("GET", "/api/products"),  # ... and at the start
        ("DELETE", "/products/1"),  # the path matches, the method doesn't
        ("PUT", "/orders"),
        ("GET", "/register"),
        ("GET", "/orders/1/cancel"),  # cancelling is a POST
        ("PUT", "/products/1"),  # changes are PATCHes
        ("POST", "/products/1/stock/2"),
        ("GET", "/docs/../openapi"),  # normalised to /openapi: nothing there
        ("GET", "/docs/a/b"),  # the docs' assets lie flat
    ],
)
def test_unrouted_requests_are_404_as_in_kong(haproxy_gateway, make_token, method, path):
    response = call(haproxy_gateway, method, path, make_token())

    assert_json_error(response, 404, {"message": "no Route matched with those values"})


def test_the_query_string_is_not_part_of_the_matched_path(haproxy_gateway):
    response = call(haproxy_gateway, "GET", "/products?page=2")

    assert response.json()["path"] == "/products?page=2"


def test_a_service_that_is_down_is_a_json_503(start_gateway, echo_upstreams, dead_upstream, make_token):
    haproxy_gateway = start_gateway({**echo_upstreams, "orders": dead_upstream})

    response = call(haproxy_gateway, "GET", "/orders", make_token())

    assert_json_error(response, 503, {"message": "The upstream server is currently unavailable"})
    assert call(haproxy_gateway, "GET", "/products").status_code == 200  # the others still answer


def test_nbf_is_checked_and_failing_claims_are_reported_together(
    start_gateway, make_config, echo_upstreams, make_token
):
    config = make_config()
    for svc in config["services"]:
        for node in svc["routes"]:
            for plugin in node.get("plugins", []):
                if plugin["name"] == "jwt":
                    plugin["config"]["claims_to_verify"] = ["exp", "nbf"]
    haproxy_gateway = start_gateway(echo_upstreams, config)
    now = int(time.time())

    not_yet = call(haproxy_gateway, "GET", "/orders", make_token(nbf=now + 60))
    neither = call(haproxy_gateway, "GET", "/orders", make_token(exp=None))
    both_bad = call(haproxy_gateway, "GET", "/orders", make_token(exp=now - 60, nbf=now + 60))
    fine = call(haproxy_gateway, "GET", "/orders", make_token(nbf=now))

    assert_json_error(not_yet, 401, {"nbf": "token not valid yet"})
    assert_json_error(neither, 401, {"exp": "must be a number", "nbf": "must be a number"})
    assert_json_error(both_bad, 401, {"exp": "token expired", "nbf": "token not valid yet"})
    assert upstream_headers(fine, "X-User-Id") == ["42"]


def test_each_credential_checks_its_own_algorithm_and_secret(start_gateway, make_config, echo_upstreams, make_token):
    config = make_config()
    partner_secret = "the-partner-app-has-a-secret-of-its-own-long-enough-for-hs512-0123456789"
    config["consumers"].append(
        {"username": "partner", "jwt_secrets": [{"key": "partner-app", "algorithm": "HS512", "secret": partner_secret}]}
    )
    haproxy_gateway = start_gateway(echo_upstreams, config)

    partner = call(
        haproxy_gateway, "GET", "/orders", make_token(iss="partner-app", secret=partner_secret, algorithm="HS512")
    )
    ours = call(haproxy_gateway, "GET", "/orders", make_token())
    wrong_secret = call(haproxy_gateway, "GET", "/orders", make_token(iss="partner-app", algorithm="HS512"))
    wrong_algorithm = call(haproxy_gateway, "GET", "/orders", make_token(iss="partner-app", secret=partner_secret))

    assert upstream_headers(partner, "X-Consumer-Username") == ["partner"]
    assert upstream_headers(partner, "X-Credential-Identifier") == ["partner-app"]
    assert upstream_headers(ours, "X-Consumer-Username") == ["users-service"]
    assert_json_error(wrong_secret, 401, {"message": "Invalid signature"})
    assert_json_error(wrong_algorithm, 401, {"message": "Invalid algorithm"})


def test_copies_of_a_service_share_its_requests(start_gateway, echo_upstreams):
    # The native stack's --scale: several addresses for one service, round robin.
    with echo_server("products-copy-1") as first, echo_server("products-copy-2") as second:
        haproxy_gateway = start_gateway({**echo_upstreams, "products": f"{first},{second}"})

        answered = {call(haproxy_gateway, "GET", "/products").json()["service"] for _ in range(6)}

    assert answered == {"products-copy-1", "products-copy-2"}
