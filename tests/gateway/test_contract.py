"""Real Kong running kong.yml routes, authenticates and sets identity headers as
the services expect.

Kong runs in front of echo servers, which reply with the request they got, so
each test sees both what the client got back and what reached the service.
"""

import base64
import json
import re
import time

import pytest

from tests.gateway.conftest import ISSUER
from tests.gateway.helpers import (
    NO_ROUTE,
    OPENAPI,
    PROTECTED,
    PUBLIC,
    assert_jwt_error,
    assert_kong_error,
    call,
    get,
    upstream_headers,
)
from tests.rawhttp import exchange

pytestmark = pytest.mark.integration

# The consumer's id: in DB-less mode Kong derives it from the username, a UUID v5
# (kong/db/schema/others/declarative_config.lua 549-556).
CONSUMER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
INVALID_TOKEN = 'Bearer error="invalid_token"'


def unsigned(header: dict, claims: dict) -> str:
    def encode(part: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    return f"{encode(header)}.{encode(claims)}."


def use_nbf(config: dict) -> dict:
    for service in config["services"]:
        for route in service["routes"]:
            for plugin in route.get("plugins", []):
                if plugin["name"] == "jwt":
                    plugin["config"]["claims_to_verify"] = ["exp", "nbf"]
    return config


# -- the jwt plugin -------------------------------------------------------------------


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_a_valid_token_reaches_the_service_with_its_sub_as_user_id(kong_gateway, make_token, method, path, service):
    response = call(kong_gateway, method, path, make_token(sub="42"))

    assert response.json()["service"] == service
    assert response.json()["path"] == path
    assert upstream_headers(response, "X-User-Id") == ["42"]
    assert upstream_headers(response, "X-Consumer-Username") == ["users-service"]
    assert upstream_headers(response, "X-Credential-Identifier") == [ISSUER]


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_the_jwt_plugin_sets_the_consumers_id(kong_gateway, make_token, method, path, service):
    # kong/plugins/jwt/handler.lua 116-117 (set_consumer): X-Consumer-ID is the
    # consumer entity's id. (The HAProxy stand-in sent none.)
    response = call(kong_gateway, method, path, make_token())

    [consumer_id] = upstream_headers(response, "X-Consumer-ID")
    assert CONSUMER_ID.fullmatch(consumer_id)
    assert upstream_headers(response, "X-Anonymous-Consumer") == []  # handler.lua 140-141: cleared


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_no_token_is_unauthorized(kong_gateway, method, path, service):
    response = call(kong_gateway, method, path)

    assert_jwt_error(response, {"message": "Unauthorized"}, challenge="Bearer")


@pytest.mark.parametrize(
    "claims, body",
    [
        ({"exp": int(time.time()) - 1}, {"exp": "token expired"}),
        ({"exp": None}, {"exp": "must be a number"}),
        # maximum_expiration: 900 (jwt_parser.lua, check_maximum_expiration)
        ({"exp": int(time.time()) + 3600}, {"exp": "exceeds maximum allowed expiration"}),
        ({"iss": "somebody-else"}, {"message": "No credentials found for given 'iss'"}),
        ({"iss": None}, {"message": "No mandatory 'iss' in claims"}),
        ({"iss": ""}, {"message": "Invalid 'iss' in claims"}),
    ],
    ids=["expired", "no-exp", "exp-beyond-maximum", "unknown-iss", "no-iss", "empty-iss"],
)
def test_a_token_with_bad_claims_is_refused_by_the_jwt_plugin(kong_gateway, make_token, claims, body):
    response = call(kong_gateway, "GET", "/users/me", make_token(**claims))

    assert_jwt_error(response, body, challenge=INVALID_TOKEN)


def test_a_token_just_within_the_maximum_expiration_is_accepted(kong_gateway, make_token):
    response = call(kong_gateway, "GET", "/users/me", make_token(exp=int(time.time()) + 890))

    assert upstream_headers(response, "X-User-Id") == ["42"]


def test_a_token_signed_with_another_secret_has_an_invalid_signature(kong_gateway, make_token):
    token = make_token(secret="not-the-secret-but-at-least-32-bytes-long")

    assert_jwt_error(call(kong_gateway, "GET", "/orders", token), {"message": "Invalid signature"})


def test_a_token_with_a_tampered_payload_has_an_invalid_signature(kong_gateway, make_token):
    header, _, signature = make_token(sub="42").split(".")
    forged_claims = make_token(sub="1").split(".")[1]

    response = call(kong_gateway, "GET", "/orders", f"{header}.{forged_claims}.{signature}")

    assert_jwt_error(response, {"message": "Invalid signature"})


def test_a_token_signed_with_another_algorithm_is_refused(kong_gateway, make_token):
    # Same secret, but the credential says HS256: Kong checks alg before the signature (handler.lua 204-206).
    token = make_token(algorithm="HS512")

    assert_jwt_error(call(kong_gateway, "GET", "/orders", token), {"message": "Invalid algorithm"})


def test_an_unsigned_token_is_refused(kong_gateway):
    # No signature at all: not a compact JWS, by the bearer token contract.
    token = unsigned({"alg": "none", "typ": "JWT"}, {"iss": ISSUER, "sub": "42", "exp": int(time.time()) + 300})

    assert_jwt_error(call(kong_gateway, "GET", "/orders", token), {"message": "Bad token; invalid JSON"})


def test_a_token_naming_an_algorithm_kong_doesnt_know_is_a_bad_token(kong_gateway):
    # Kong's parser refuses alg "none" (jwt_parser.lua 268-269: "invalid alg"); the
    # pre-function, which parses the token first, answers any parser failure with
    # "Bad token; invalid JSON" before the jwt plugin would say "invalid alg".
    token = unsigned({"alg": "none", "typ": "JWT"}, {"iss": ISSUER, "sub": "42", "exp": int(time.time()) + 300})

    assert_jwt_error(call(kong_gateway, "GET", "/orders", token + "c2ln"), {"message": "Bad token; invalid JSON"})


def test_something_that_is_no_jwt_is_a_bad_token(kong_gateway):
    assert_jwt_error(call(kong_gateway, "GET", "/orders", "not-a-jwt"), {"message": "Bad token; invalid JSON"})


def test_a_token_in_the_query_string_is_not_accepted(kong_gateway, make_token):
    response = call(kong_gateway, "GET", f"/users/me?jwt={make_token()}")

    assert_jwt_error(response, {"message": "Unauthorized"})


def test_a_token_in_another_scheme_is_not_accepted(kong_gateway, make_token):
    response = call(kong_gateway, "GET", "/users/me", headers={"Authorization": f"Token {make_token()}"})

    assert_jwt_error(response, {"message": "Unauthorized"}, challenge="Bearer")


def test_a_numeric_sub_is_passed_on_exactly(kong_gateway, make_token):
    response = call(kong_gateway, "GET", "/users/me", make_token(sub=12345678901))

    assert upstream_headers(response, "X-User-Id") == ["12345678901"]


def test_the_token_reaches_the_service_as_a_bearer_token(kong_gateway, make_token):
    # The pre-function passes the header on as "Bearer <token>", whatever case the client used.
    token = make_token()

    response = call(kong_gateway, "GET", "/orders", headers={"Authorization": f"bEaReR   {token}"})

    assert upstream_headers(response, "Authorization") == [f"Bearer {token}"]


# -- X-User-Id and the other identity headers -----------------------------------------


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_a_client_sent_user_id_is_dropped_on_public_routes(kong_gateway, method, path, service):
    response = call(kong_gateway, method, path, headers={"X-User-Id": "1"}, json={})

    assert response.json()["service"] == service
    assert upstream_headers(response, "X-User-Id") == []


def test_every_copy_of_a_client_sent_user_id_is_dropped(kong_gateway, make_token):
    # clear_header removes all of them, whatever their case.
    headers = b"Host: gateway\r\nX-User-Id: 1\r\nx-user-id: 2\r\nX-USER-ID: 3\r\n"
    authorization = f"Authorization: Bearer {make_token(sub='42')}\r\n".encode()

    public = exchange(kong_gateway, get(b"/products", headers))
    protected = exchange(kong_gateway, get(b"/orders", headers + authorization))

    assert upstream_headers(public, "X-User-Id") == []
    assert upstream_headers(protected, "X-User-Id") == ["42"]


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_a_valid_token_on_a_public_route_sets_no_identity(kong_gateway, make_token, method, path, service):
    # No jwt plugin runs there, so nothing is verified and nothing set.
    response = call(kong_gateway, method, path, make_token(sub="42"), json={})

    assert upstream_headers(response, "X-User-Id") == []
    assert upstream_headers(response, "X-Consumer-ID") == []


def test_the_service_sees_its_own_address_as_host(kong_gateway, echo_upstreams):
    # The upstream entity's target (kong/runloop/balancer/init.lua 440-454,
    # set_host_header), not the client's Host and not the service's compose name.
    response = call(kong_gateway, "GET", "/products")

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
        ("GET", "/metrics"),  # the prometheus plugin answers on the status listener only
    ],
)
def test_unrouted_requests_are_kongs_404(kong_gateway, make_token, method, path):
    response = call(kong_gateway, method, path, make_token())

    assert_kong_error(response, 404, NO_ROUTE)


@pytest.mark.parametrize(
    "method, path, service", [*PROTECTED, *PUBLIC, *(("GET", path, service) for path, service in OPENAPI)]
)
def test_each_route_reaches_its_service_with_method_and_path_unchanged(kong_gateway, make_token, method, path, service):
    response = call(kong_gateway, method, path, make_token())

    assert (response.json()["service"], response.json()["method"], response.json()["path"]) == (service, method, path)


def test_the_query_string_is_passed_on_but_not_matched(kong_gateway):
    response = call(kong_gateway, "GET", "/products?page=2")

    assert response.json()["path"] == "/products?page=2"


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/openapi/usersXjson"),  # the dot is a literal dot
        ("GET", "/openapi/users.json/x"),
        ("GET", "/openapi/users.yaml"),
        ("GET", "/openapi/"),
        ("POST", "/openapi/users.json"),
    ],
)
def test_nothing_else_under_openapi_is_routed(kong_gateway, method, path):
    assert_kong_error(call(kong_gateway, method, path), 404, NO_ROUTE)


# -- variants of kong.yml -------------------------------------------------------------


def test_nbf_is_checked_and_failing_claims_are_reported_together(
    start_gateway, make_config, echo_upstreams, make_token
):
    gateway = start_gateway(echo_upstreams, use_nbf(make_config())).url
    now = int(time.time())

    not_yet = call(gateway, "GET", "/orders", make_token(nbf=now + 60))
    neither = call(gateway, "GET", "/orders", make_token(exp=None))
    both_bad = call(gateway, "GET", "/orders", make_token(exp=now - 60, nbf=now + 60))
    fine = call(gateway, "GET", "/orders", make_token(nbf=now))

    assert_jwt_error(not_yet, {"nbf": "token not valid yet"})
    assert_jwt_error(neither, {"exp": "must be a number", "nbf": "must be a number"})
    assert_jwt_error(both_bad, {"exp": "token expired", "nbf": "token not valid yet"})
    assert upstream_headers(fine, "X-User-Id") == ["42"]


def test_each_credential_checks_its_own_algorithm_and_secret(start_gateway, make_config, echo_upstreams, make_token):
    config = make_config()
    partner_secret = "the-partner-app-has-a-secret-of-its-own-long-enough-for-hs512-0123456789"
    config["consumers"].append(
        {"username": "partner", "jwt_secrets": [{"key": "partner-app", "algorithm": "HS512", "secret": partner_secret}]}
    )
    gateway = start_gateway(echo_upstreams, config).url

    partner = call(gateway, "GET", "/orders", make_token(iss="partner-app", secret=partner_secret, algorithm="HS512"))
    ours = call(gateway, "GET", "/orders", make_token())
    wrong_secret = call(gateway, "GET", "/orders", make_token(iss="partner-app", algorithm="HS512"))
    wrong_algorithm = call(gateway, "GET", "/orders", make_token(iss="partner-app", secret=partner_secret))

    assert upstream_headers(partner, "X-Consumer-Username") == ["partner"]
    assert upstream_headers(partner, "X-Credential-Identifier") == ["partner-app"]
    assert upstream_headers(ours, "X-Consumer-Username") == ["users-service"]
    assert upstream_headers(partner, "X-Consumer-ID") != upstream_headers(ours, "X-Consumer-ID")
    assert_jwt_error(wrong_secret, {"message": "Invalid signature"})
    assert_jwt_error(wrong_algorithm, {"message": "Invalid algorithm"})
