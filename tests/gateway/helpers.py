"""What the gateway tests share: the routes of kong.yml, requests to Kong, and
what Kong's answers and the echo servers' reports look like."""

import re
from urllib.parse import urlsplit

import requests

from tests import kong_routes
from tests.rawhttp import RawResponse
from tests.support import client_from, fresh_loopback_addresses, header_of, status_of

PROTECTED = kong_routes.protected()  # (method, a path, service) for every route with the jwt plugin
PUBLIC = [
    ("POST", "/register", "users"),
    ("POST", "/token", "users"),
    ("GET", "/products", "products"),
    ("GET", "/products/1", "products"),
    ("GET", "/docs", "users"),
    ("GET", "/docs/swagger-ui-bundle.js", "users"),
]
OPENAPI = [("/openapi/users.json", "users"), ("/openapi/products.json", "products"), ("/openapi/orders.json", "orders")]
TIMEOUT = 10
NO_ROUTE = "no Route matched with those values"
# Kong's request id (kong/observability/tracing/request_id.lua): 32 hex digits, in the
# body of Kong's own errors. Not the X-Request-ID of the correlation-id plugin.
KONG_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


# kong.yml's rate-limiting: requests a minute per client address, on these routes only.
LIMITS = {"/token": 60, "/register": 20}
_FRESH_SOURCES = fresh_loopback_addresses(1)


def call(gateway: str, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
    """One request to Kong. To a rate-limited route it comes from an address of its
    own, so that no test spends another's budget (the rate-limit tests count theirs)."""
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if urlsplit(path).path in LIMITS:
        with client_from(next(_FRESH_SOURCES)) as client:
            return client.request(method, gateway + path, headers=headers, timeout=TIMEOUT, **kwargs)
    return requests.request(method, gateway + path, headers=headers, timeout=TIMEOUT, **kwargs)


def get(path: bytes, headers: bytes = b"Host: gateway\r\n") -> bytes:
    """A GET request as bytes, for tests/rawhttp.py: nothing fixed up."""
    return b"GET " + path + b" HTTP/1.1\r\n" + headers + b"Connection: close\r\n\r\n"


def upstream_headers(response: requests.Response | RawResponse, name: str) -> list[str]:
    """Every value of header `name` that reached the echo server."""
    assert status_of(response) == 200, response.text if isinstance(response, requests.Response) else response
    return [value for key, value in response.json()["headers"] if key.lower() == name.lower()]


def assert_kong_error(response: requests.Response | RawResponse, status: int, message: str) -> None:
    """One of Kong's own errors (kong.response.error, or nginx's through Kong's
    error handler, kong/error_handlers.lua): JSON with the message and Kong's request id."""
    assert status_of(response) == status, response.text if isinstance(response, requests.Response) else response
    assert header_of(response, "Content-Type").startswith("application/json")
    body = response.json()
    assert body.keys() == {"message", "request_id"}, body
    assert body["message"] == message
    assert KONG_REQUEST_ID.fullmatch(body["request_id"])


def assert_jwt_error(response: requests.Response | RawResponse, body: dict, challenge: str | None = None) -> None:
    """A 401 as the jwt plugin answers (kong/plugins/jwt/handler.lua 301,
    kong.response.exit): exactly `body`, no request id. The pre-function answers the same way."""
    assert status_of(response) == 401, response.text if isinstance(response, requests.Response) else response
    assert header_of(response, "Content-Type").startswith("application/json")
    assert response.json() == body
    if challenge is not None:
        assert header_of(response, "WWW-Authenticate") == challenge
