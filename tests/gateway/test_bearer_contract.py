"""The bearer token contract (kong.yml's global pre-function) on real Kong, in
front of echo servers.

The tokens here are signed with the gateway's secret wherever that matters: what
refuses them is the contract, not their signature. Each refusal is a 401 in the
jwt plugin's shape (kong/plugins/jwt/handler.lua 301), never one of Kong's 500s.
tests/e2e/test_edge_tokens.py holds the same cases against the running stack.
"""

import base64
import hashlib
import hmac
import json
import time

import pytest

from tests.gateway.conftest import ISSUER, TEST_SECRET
from tests.gateway.helpers import (
    NO_ROUTE,
    PROTECTED,
    PUBLIC,
    assert_jwt_error,
    assert_kong_error,
    call,
    upstream_headers,
)
from tests.rawhttp import exchange

pytestmark = pytest.mark.integration

INVALID_JSON = {"message": "Bad token; invalid JSON"}
INVALID_CLAIMS = {"message": "Bad token; invalid claims"}
INVALID_ISS = {"message": "Invalid 'iss' in claims"}
INVALID_TOKEN = 'Bearer error="invalid_token"'
# Every JSON type but a string: Kong 3.9.3's jwt plugin looks its credential up by
# iss before any signature check (handler.lua 182-192) and a key that is no string
# raises in the DAO's cache key: a 500 for anyone, without the contract.
NON_STRING_ISS = {"number": "1", "true": "true", "null": "null", "object": '{"a":1}', "array": '["shop-users"]'}


def segment(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims_json: str | bytes, header_json: str | bytes = '{"alg":"HS256","typ":"JWT"}') -> str:
    """A token over exactly this JSON text, signed with the gateway's secret."""
    signing_input = f"{segment(header_json)}.{segment(claims_json)}"
    signature = hmac.new(TEST_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{segment(signature)}"


def claims(**overrides) -> str:
    return json.dumps({"iss": ISSUER, "sub": "42", "exp": exp(), **overrides}, separators=(",", ":"))


def exp() -> int:
    return int(time.time()) + 300


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"], ids=["Bearer", "lower", "upper", "mixed"])
def test_the_scheme_is_matched_in_any_case(kong_gateway, scheme):
    response = call(kong_gateway, "GET", "/orders", headers={"Authorization": f"{scheme} {signed(claims())}"})

    assert upstream_headers(response, "X-User-Id") == ["42"]


def test_spaces_after_the_scheme_are_one_separator(kong_gateway):
    response = call(kong_gateway, "GET", "/orders", headers={"Authorization": f"Bearer    {signed(claims())}"})

    assert upstream_headers(response, "X-User-Id") == ["42"]


@pytest.mark.parametrize(
    "value, body, challenge",
    [
        # Not the Bearer scheme: no token at all, as Kong's jwt plugin says when it finds none.
        ("Basic dXNlcjpwYXNz", {"message": "Unauthorized"}, "Bearer"),
        ("Token {token}", {"message": "Unauthorized"}, "Bearer"),
        # Kong's jwt plugin matches \s*[Bb]earer\s+(.+) anywhere in the value (handler.lua 62): not here.
        ("xBearer {token}", {"message": "Unauthorized"}, "Bearer"),
        ("Basic dXNlcg==, Bearer {token}", {"message": "Unauthorized"}, "Bearer"),
        ("Bearer\t{token}", {"message": "Unauthorized"}, "Bearer"),
        ("Bearer {token}, Bearer {token}", INVALID_JSON, INVALID_TOKEN),
        ("Bearer {token} trailing", INVALID_JSON, INVALID_TOKEN),
        ("Bearer not-a-jwt", INVALID_JSON, INVALID_TOKEN),
        ("Bearer {token}=", INVALID_JSON, INVALID_TOKEN),  # padded base64
        ("Bearer {unsigned}", INVALID_JSON, INVALID_TOKEN),  # no signature part
        ("Bearer {token}.{token}", INVALID_JSON, INVALID_TOKEN),  # more than three parts
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
        "six-parts",
    ],
)
def test_an_authorization_header_that_isnt_one_bearer_token_is_refused(kong_gateway, value, body, challenge):
    token = signed(claims())
    value = value.format(token=token, unsigned=token.rsplit(".", 1)[0] + ".")

    response = call(kong_gateway, "GET", "/orders", headers={"Authorization": value})

    assert_jwt_error(response, body, challenge=challenge)


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
        # Objects, but without alg Kong's parser fails (jwt_parser.lua 268-269, "invalid
        # alg"); the pre-function answers every parser failure as invalid JSON.
        "e30.e30.eA",
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
def test_parts_that_are_not_json_objects_are_a_bad_token(kong_gateway, token):
    assert_jwt_error(call(kong_gateway, "GET", "/orders", token), INVALID_JSON, challenge=INVALID_TOKEN)


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
def test_signed_tokens_two_parsers_could_read_differently_are_refused(kong_gateway, claims_json, header_json):
    # Kong's cjson keeps the last of two equal keys and decodes escapes; a service
    # decoding the same token (PyJWT) might not. The contract leaves nothing to choose.
    header_json = (header_json or '{{"alg":"HS256","typ":"JWT"}}').format()
    token = signed(claims_json.format(exp=exp()), header_json)

    assert_jwt_error(call(kong_gateway, "GET", "/orders", token), INVALID_JSON)


@pytest.mark.parametrize(
    "value",
    ['"{exp}"', "{exp}.5", "1.7e9", "-5", "true", "null", "[{exp}]", "1234567890123456"],
    ids=["numeric-string", "fraction", "exponent", "negative", "true", "null", "array", "16-digits"],
)
@pytest.mark.parametrize("claim", ["exp", "nbf"])
def test_exp_and_nbf_must_be_whole_numbers(kong_gateway, claim, value):
    # Kong reads any JSON number (and refuses strings only after the signature
    # check): whole numbers, not negative, at most 15 digits.
    body = {"iss": ISSUER, "sub": "42", "exp": exp()}
    text = json.dumps(body, separators=(",", ":"))[:-1] + f',"{claim}":{value.format(exp=exp())}}}'
    if claim == "exp":
        text = text.replace(f'"exp":{body["exp"]},', "")

    assert_jwt_error(call(kong_gateway, "GET", "/orders", signed(text)), INVALID_CLAIMS, challenge=INVALID_TOKEN)


def test_a_spaced_exp_is_still_a_number(kong_gateway):
    text = '{"iss":"shop-users","sub":"42","exp" : 5 }'

    assert_jwt_error(call(kong_gateway, "GET", "/orders", signed(text)), {"exp": "token expired"})


def test_json_white_space_around_a_valid_token_is_fine(kong_gateway):
    text = f' {{\n\t"iss" : "shop-users",\r\n "sub":"42", "exp": {exp()} }}\n'

    assert upstream_headers(call(kong_gateway, "GET", "/orders", signed(text)), "X-User-Id") == ["42"]


# -- iss: a string or nothing -----------------------------------------------------------


@pytest.mark.parametrize("iss", NON_STRING_ISS.values(), ids=NON_STRING_ISS.keys())
def test_a_non_string_iss_in_the_claims_is_a_401(kong_gateway, iss):
    text = f'{{"iss":{iss},"sub":"42","exp":{exp()}}}'

    assert_jwt_error(call(kong_gateway, "GET", "/orders", signed(text)), INVALID_ISS, challenge=INVALID_TOKEN)


@pytest.mark.parametrize("iss", NON_STRING_ISS.values(), ids=NON_STRING_ISS.keys())
def test_a_non_string_iss_in_the_header_is_a_401(kong_gateway, iss):
    # Without iss in the claims the jwt plugin takes the header's (handler.lua 182).
    header = f'{{"alg":"HS256","typ":"JWT","iss":{iss}}}'

    response = call(kong_gateway, "GET", "/orders", signed(f'{{"sub":"42","exp":{exp()}}}', header))

    assert_jwt_error(response, INVALID_ISS, challenge=INVALID_TOKEN)


@pytest.mark.parametrize("iss", NON_STRING_ISS.values(), ids=NON_STRING_ISS.keys())
def test_a_non_string_iss_is_a_401_on_public_routes_too(kong_gateway, iss):
    # Signed with any secret: the lookup by iss comes before the signature check.
    text = f'{{"iss":{iss},"sub":"42","exp":{exp()}}}'

    assert_jwt_error(call(kong_gateway, "GET", "/products", signed(text)), INVALID_ISS)


def test_a_false_iss_counts_as_none(kong_gateway):
    # `claims.iss or header.iss` is nil for false: the jwt plugin's own answer (handler.lua 183-184).
    text = f'{{"iss":false,"sub":"42","exp":{exp()}}}'

    assert_jwt_error(call(kong_gateway, "GET", "/orders", signed(text)), {"message": "No mandatory 'iss' in claims"})


def test_the_header_iss_is_not_read_when_the_claims_have_one(kong_gateway):
    header = '{"alg":"HS256","typ":"JWT","iss":1}'

    response = call(kong_gateway, "GET", "/orders", signed(claims(), header))

    assert upstream_headers(response, "X-User-Id") == ["42"]


def test_a_valid_token_with_its_iss_in_the_header_is_accepted(kong_gateway):
    header = '{"alg":"HS256","typ":"JWT","iss":"shop-users"}'

    response = call(kong_gateway, "GET", "/orders", signed(f'{{"sub":"42","exp":{exp()}}}', header))

    assert upstream_headers(response, "X-User-Id") == ["42"]


# -- every route ----------------------------------------------------------------------


@pytest.mark.parametrize("method, path, service", PROTECTED[:1] + PUBLIC)
def test_two_authorization_headers_are_nginxs_400_on_every_route(kong_gateway, method, path, service):
    # nginx takes one Authorization header only (src/http/ngx_http_request.c 150-152,
    # ngx_http_process_unique_header_line: "client sent duplicate header line"),
    # before Kong runs; the HAProxy stand-in answered the jwt plugin's
    # 401 "Multiple tokens provided" (handler.lua 166-167), which Kong can't reach.
    token = signed(claims()).encode()
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Type: application/json\r\n".encode()
        + b"Authorization: Bearer "
        + token
        + b"\r\nAuthorization: Bearer "
        + token
        + b"\r\nConnection: close\r\n\r\n{}"
    )

    assert_kong_error(exchange(kong_gateway, request), 400, "Bad request")


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_a_malformed_bearer_token_is_refused_on_public_routes_too(kong_gateway, method, path, service):
    # The pre-function is global; a well-formed token is checked only where a jwt plugin is.
    assert_jwt_error(call(kong_gateway, method, path, "MQ.e30.eA", json={}), INVALID_JSON)


@pytest.mark.parametrize("method, path, service", PUBLIC)
def test_other_schemes_are_refused_on_public_routes_too(kong_gateway, method, path, service):
    response = call(kong_gateway, method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"}, json={})

    assert_jwt_error(response, {"message": "Unauthorized"})


def test_an_unknown_route_is_404_before_any_token_is_looked_at(kong_gateway):
    # Kong's router answers before any plugin runs.
    assert_kong_error(call(kong_gateway, "GET", "/nowhere", "MQ.e30.eA"), 404, NO_ROUTE)


def test_without_the_contract_kong_answers_these_tokens_with_a_500(start_gateway, make_config, echo_upstreams):
    # Why the pre-function exists: Kong 3.9.3's jwt plugin alone raises on them
    # (jwt_parser.lua 259-268 indexes a part that is no object outside its pcall;
    # a non-string iss raises in the credential's cache key, handler.lua 190). If
    # this starts failing, Kong has fixed them and the contract may shrink.
    config = make_config()
    config["plugins"] = [plugin for plugin in config["plugins"] if plugin["name"] != "pre-function"]
    gateway = start_gateway(echo_upstreams, config).url
    tokens = ["MQ.e30.eA", *(signed(f'{{"iss":{iss},"sub":"42","exp":{exp()}}}') for iss in ("1", "true", '{"a":1}'))]

    statuses = [call(gateway, "GET", "/orders", token).status_code for token in tokens]

    assert statuses == [500] * len(tokens)
