"""The bearer token contract (kong.yml's pre-function) as the generated HAProxy
enforces it, in front of echo servers.

The tokens here are signed with the gateway's secret wherever that matters: what
refuses them is the contract, not their signature. tests/e2e/test_edge_tokens.py
holds the same cases against the running stack, whichever gateway runs it.
"""

import base64
import hashlib
import hmac
import json
import time

import pytest

from tests.gateway.conftest import ISSUER, TEST_SECRET
from tests.gateway.test_haproxy_contract import PROTECTED, PUBLIC, assert_json_error, call, upstream_headers
from tests.rawhttp import exchange

pytestmark = pytest.mark.integration

INVALID_JSON = {"message": "Bad token; invalid JSON"}
INVALID_CLAIMS = {"message": "Bad token; invalid claims"}
INVALID_TOKEN = 'Bearer error="invalid_token"'


def segment(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims_json: str | bytes, header_json: str | bytes = '{"alg":"HS256","typ":"JWT"}') -> str:
    """A token over exactly this JSON text, signed with the gateway's secret."""
    signing_input = f"{segment(header_json)}.{segment(claims_json)}"
    signature = hmac.new(TEST_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{segment(signature)}"


def claims(**overrides) -> str:
    return json.dumps({"iss": ISSUER, "sub": "42", "exp": int(time.time()) + 300, **overrides}, separators=(",", ":"))


def exp() -> int:
    return int(time.time()) + 300


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"], ids=["Bearer", "lower", "upper", "mixed"])
def test_the_scheme_is_matched_in_any_case(haproxy_gateway, scheme):
    response = call(haproxy_gateway, "GET", "/orders", headers={"Authorization": f"{scheme} {signed(claims())}"})

    assert upstream_headers(response, "X-User-Id") == ["42"]


def test_spaces_after_the_scheme_are_one_separator(haproxy_gateway):
    response = call(haproxy_gateway, "GET", "/orders", headers={"Authorization": f"Bearer    {signed(claims())}"})

    assert upstream_headers(response, "X-User-Id") == ["42"]


@pytest.mark.parametrize(
    "value, body, challenge",
    [
        # Not the Bearer scheme: no token at all, as Kong's jwt plugin says when it finds none.
        ("Basic dXNlcjpwYXNz", {"message": "Unauthorized"}, "Bearer"),
        ("Token {token}", {"message": "Unauthorized"}, "Bearer"),
        # Kong's jwt plugin matches [Bb]earer\s+(.+) anywhere in the value: not here.
        ("xBearer {token}", {"message": "Unauthorized"}, "Bearer"),
        ("Basic dXNlcg==, Bearer {token}", {"message": "Unauthorized"}, "Bearer"),
        ("Bearer\t{token}", {"message": "Unauthorized"}, "Bearer"),
        # HAProxy's http_auth_bearer would take the first list element: not here.
        ("Bearer {token}, Bearer {token}", INVALID_JSON, INVALID_TOKEN),
        ("Bearer {token} trailing", INVALID_JSON, INVALID_TOKEN),
        ("Bearer not-a-jwt", INVALID_JSON, INVALID_TOKEN),
        ("Bearer {token}=", INVALID_JSON, INVALID_TOKEN),  # padded base64
        ("Bearer {unsigned}", INVALID_JSON, INVALID_TOKEN),  # no signature part
    ],
    ids=[
        "basic",
        "other-scheme",
        "scheme-inside-a-word",
        "bearer-after-a-comma",
        "tab",
        "two-tokens",
        "trailing-word",
        "no-jws",
        "padding",
        "empty-signature",
    ],
)
def test_an_authorization_header_that_isnt_one_bearer_token_is_refused(haproxy_gateway, value, body, challenge):
    token = signed(claims())
    value = value.format(token=token, unsigned=token.rsplit(".", 1)[0] + ".")

    response = call(haproxy_gateway, "GET", "/orders", headers={"Authorization": value})

    assert_json_error(response, 401, body)
    assert response.headers["WWW-Authenticate"] == challenge


@pytest.mark.parametrize(
    "token",
    [
        "MQ.e30.eA",  # the header is the JSON number 1: Kong 3.9.3 answers 500 without the contract
        "e30.MQ.eA",  # the claims are 1
        f"{segment('[1]')}.e30.eA",
        f"e30.{segment('null')}.eA",
        f"e30.{segment('true')}.eA",
        f"e30.{segment(chr(34) + 'text' + chr(34))}.eA",
        f"{segment('{}x')}.e30.eA",
        "e30.e30.eA",  # objects, but the jwt plugin finds no alg: its own answer
    ],
    ids=[
        "header-number",
        "claims-number",
        "header-array",
        "claims-null",
        "claims-true",
        "claims-string",
        "trailing-garbage",
        "empty-objects",
    ],
)
def test_parts_that_are_not_json_objects_are_a_bad_token(haproxy_gateway, token):
    response = call(haproxy_gateway, "GET", "/orders", token)

    expected = {"message": "Bad token; invalid alg"} if token == "e30.e30.eA" else INVALID_JSON
    assert_json_error(response, 401, expected)


@pytest.mark.parametrize(
    "claims_json, header_json",
    [
        ('{{"iss":"shop-users","sub":"1","sub":"42","exp":{exp}}}', None),
        ('{{"iss":"somebody","iss":"shop-users","sub":"42","exp":{exp}}}', None),
        ('{{"iss":"shop-users","sub":"42","exp":1,"exp":{exp}}}', None),
        ('{{"iss":"shop-users","sub":"42","exp":{exp}}}', '{{"alg":"none","alg":"HS256"}}'),
        ('{{"iss":"shop-users","s\\u0075b":"42","exp":{exp}}}', None),
        ('{{"iss":"shop-users","sub":"4\\"2","exp":{exp}}}', None),
        ('{{"iss":"shop-users","sub":"4\x012","exp":{exp}}}', None),
        ('{{"iss":"shop-users","sub":"4\x002","exp":{exp}}}', None),
    ],
    ids=[
        "sub-twice",
        "iss-twice",
        "exp-twice",
        "alg-twice",
        "escaped-key",
        "escaped-quote",
        "control-character",
        "nul",
    ],
)
def test_signed_tokens_two_parsers_could_read_differently_are_refused(haproxy_gateway, claims_json, header_json):
    # Kong's cjson keeps the last of two equal keys and decodes escapes; HAProxy's
    # reader keeps the first and doesn't. The contract leaves nothing to choose.
    header_json = (header_json or '{{"alg":"HS256","typ":"JWT"}}').format()
    token = signed(claims_json.format(exp=exp()), header_json)

    assert_json_error(call(haproxy_gateway, "GET", "/orders", token), 401, INVALID_JSON)


@pytest.mark.parametrize(
    "value",
    ['"{exp}"', "{exp}.5", "1.7e9", "-5", "true", "null", "[{exp}]", "1234567890123456"],
    ids=["numeric-string", "fraction", "exponent", "negative", "true", "null", "array", "16-digits"],
)
@pytest.mark.parametrize("claim", ["exp", "nbf"])
def test_exp_and_nbf_must_be_whole_numbers(haproxy_gateway, claim, value):
    # Kong reads any JSON number (and refuses strings after the signature check);
    # HAProxy reads integers, a numeric string as one, and a negative one wrongly:
    # whole numbers, not negative, at most 15 digits.
    body = {"iss": ISSUER, "sub": "42", "exp": exp()}
    text = json.dumps(body, separators=(",", ":"))[:-1] + f',"{claim}":{value.format(exp=exp())}}}'
    if claim == "exp":
        text = text.replace(f'"exp":{body["exp"]},', "")

    assert_json_error(call(haproxy_gateway, "GET", "/orders", signed(text)), 401, INVALID_CLAIMS)


def test_a_spaced_exp_is_still_a_number(haproxy_gateway):
    text = '{"iss":"shop-users","sub":"42","exp" : 5 }'

    assert_json_error(call(haproxy_gateway, "GET", "/orders", signed(text)), 401, {"exp": "token expired"})


def test_json_white_space_around_a_valid_token_is_fine(haproxy_gateway):
    text = f' {{\n\t"iss" : "shop-users",\r\n "sub":"42", "exp": {exp()} }}\n'

    assert upstream_headers(call(haproxy_gateway, "GET", "/orders", signed(text)), "X-User-Id") == ["42"]


@pytest.mark.parametrize("method, path, service", PROTECTED[:1] + PUBLIC)
def test_two_authorization_headers_are_refused_on_every_route(haproxy_gateway, method, path, service):
    token = signed(claims()).encode()
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Type: application/json\r\n".encode()
        + b"Authorization: Bearer "
        + token
        + b"\r\nAuthorization: Bearer "
        + token
        + b"\r\nConnection: close\r\n\r\n{}"
    )

    response = exchange(haproxy_gateway, request)

    assert response.status == 401
    assert response.json() == {"message": "Multiple tokens provided"}


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_a_malformed_bearer_token_is_refused_on_public_routes_too(haproxy_gateway, method, path, service):
    # The pre-function is global, as Kong runs it; a well-formed token is checked
    # only where a jwt plugin is (test_haproxy_contract.py).
    assert_json_error(call(haproxy_gateway, method, path, "MQ.e30.eA", json={}), 401, INVALID_JSON)


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_other_schemes_are_refused_on_public_routes_too(haproxy_gateway, method, path, service):
    response = call(haproxy_gateway, method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"}, json={})

    assert_json_error(response, 401, {"message": "Unauthorized"})


def test_an_unknown_route_is_404_before_any_token_is_looked_at(haproxy_gateway):
    # Kong's router answers before the pre-function runs.
    response = call(haproxy_gateway, "GET", "/nowhere", "MQ.e30.eA")

    assert_json_error(response, 404, {"message": "no Route matched with those values"})
