"""The bearer token contract (kong.yml's global pre-function, docs/security.md),
through port 8000: one well-formed token is read, anything else refused alike.

Without the pre-function, Kong 3.9.3 answers 500 to MQ.e30.eA
(kong/plugins/jwt/jwt_parser.lua: decode_token's pcall covers the json.decode
calls, not the header.alg index after them) and to a token whose iss is no string
(kong/plugins/jwt/handler.lua looks the credential up by it before any signature
check), and matches its scheme with an unanchored \\s*[Bb]earer\\s+(.+).
tests/gateway/ has every case against Kong with echo upstreams.
"""

import base64
import hashlib
import hmac
import json
import time

import pytest

from tests.e2e.conftest import GATEWAY_URL, ISSUER
from tests.e2e.errors import assert_error
from tests.rawhttp import exchange

pytestmark = pytest.mark.e2e


@pytest.fixture
def sign(stack_jwt_secret, session_user):
    """Factory: a token over exactly this claims JSON text, signed with the stack's secret.
    "{sub}" and "{exp}" in it become the session user's id and a valid expiry."""
    user_id, _ = session_user

    def make(claims_json: str, header_json: str = '{"alg":"HS256","typ":"JWT"}') -> str:
        text = claims_json.replace("{sub}", str(user_id)).replace("{exp}", str(int(time.time()) + 300))
        signing_input = f"{_segment(header_json)}.{_segment(text)}"
        signature = hmac.new(stack_jwt_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_segment(signature)}"

    return make


def _segment(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


GOOD = json.dumps({"iss": ISSUER, "sub": "{sub}", "exp": "{exp}"}, separators=(",", ":")).replace('"{exp}"', "{exp}")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_scheme_is_read_in_any_case(gateway, session_user, sign, scheme):
    user_id, _ = session_user

    response = gateway.get("/users/me", headers={"Authorization": f"{scheme} {sign(GOOD)}"})

    assert response.status_code == 200, response.text
    assert response.json()["id"] == user_id


@pytest.mark.parametrize(
    "value, message",
    [
        ("Bearer MQ.e30.eA", "Bad token; invalid JSON"),  # the 500 on Kong without the contract
        ("Bearer e30.MQ.eA", "Bad token; invalid JSON"),
        ("Basic dXNlcg==, Bearer {token}", "Unauthorized"),  # Kong's unanchored match would take it
        ("xBearer {token}", "Unauthorized"),
        ("Bearer {token}, Bearer {token}", "Bad token; invalid JSON"),
    ],
    ids=["header-not-an-object", "claims-not-an-object", "bearer-after-a-comma", "scheme-in-a-word", "two-tokens"],
)
def test_what_isnt_one_well_formed_bearer_token_is_401(gateway, sign, value, message):
    response = gateway.get("/users/me", headers={"Authorization": value.format(token=sign(GOOD))})

    assert_error(response, 401, message)


@pytest.mark.parametrize(
    "claims_json, message",
    [
        ('{"iss":"shop-users","sub":"1","sub":"{sub}","exp":{exp}}', "Bad token; invalid JSON"),
        ('{"iss":"shop-users","s\\u0075b":"{sub}","exp":{exp}}', "Bad token; invalid JSON"),
        ('{"iss":"shop-users","sub":"{sub}","exp":"{exp}"}', "Bad token; invalid claims"),
        ('{"iss":"shop-users","sub":"{sub}","exp":{exp}.5}', "Bad token; invalid claims"),
    ],
    ids=["sub-twice", "escaped-key", "exp-in-a-string", "exp-with-a-fraction"],
)
def test_signed_tokens_the_gateways_could_read_differently_are_401(gateway, sign, claims_json, message):
    assert_error(gateway.get("/users/me", headers={"Authorization": f"Bearer {sign(claims_json)}"}), 401, message)


@pytest.mark.parametrize("iss", ["1", "true", "null", "{}", '["shop-users"]', 'false,"x":1'])
def test_a_token_whose_iss_is_no_string_is_401_not_500(gateway, sign, iss):
    # Any signature would do: Kong's jwt plugin raised on such a key before it
    # checked one (kong/db/dao/init.lua, cache_key), a 500 for anyone.
    claims = GOOD.replace(f'"{ISSUER}"', iss)

    response = gateway.get("/users/me", headers={"Authorization": f"Bearer {sign(claims)}"})

    if iss.startswith("false"):  # claims' iss is false: Kong takes the header's, which is absent
        assert_error(response, 401, "No mandatory 'iss' in claims")
    else:
        assert_error(response, 401, "Invalid 'iss' in claims")


def test_an_iss_in_the_tokens_header_that_is_no_string_is_401(gateway, sign):
    # The jwt plugin falls back to the header's iss (handler.lua: claims[key] or header[key]).
    claims = json.dumps({"sub": "1", "exp": int(time.time()) + 300})
    token = sign(claims, header_json='{"alg":"HS256","iss":7}')

    response = gateway.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    assert_error(response, 401, "Invalid 'iss' in claims")


@pytest.mark.parametrize("path", [b"/users/me", b"/products"], ids=["protected", "public"])
def test_two_authorization_headers_are_nginxs_400_on_every_route(gateway, sign, path):
    # Authorization is one of nginx's unique headers (ngx_http_request.c,
    # ngx_http_headers_in: ngx_http_process_unique_header_line): a second one is
    # a bad request before Kong runs a plugin.
    token = sign(GOOD).encode()
    request = (
        b"GET " + path + b" HTTP/1.1\r\nHost: shop\r\nAccept: application/json\r\n"
        b"Authorization: Bearer " + token + b"\r\nAuthorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n"
    )

    assert_error(exchange(GATEWAY_URL, request), 400, "Bad request")


def test_a_malformed_bearer_token_is_401_on_a_public_route_too(gateway):
    # The pre-function is global; a well-formed token is verified only where a jwt plugin is.
    assert_error(
        gateway.get("/products", headers={"Authorization": "Bearer MQ.e30.eA"}), 401, "Bad token; invalid JSON"
    )
