"""What the generated HAProxy does around the plugins, as nginx does under Kong:
the normalised path, the forwarded headers, the request's size limits, and the
whole body buffered before a service sees the request.

Real HAProxy in front of echo servers (and, where a test needs to see when a
request arrives, an upstream of its own); requests a client library would fix
up go over bare sockets.
"""

import json
import socket
from http.server import BaseHTTPRequestHandler

import pytest

from tests.gateway.conftest import serving
from tests.gateway.test_haproxy_contract import assert_json_error, call, upstream_headers
from tests.rawhttp import address, exchange, read_response

pytestmark = pytest.mark.integration

NO_ROUTE = {"message": "no Route matched with those values"}


def get(path: bytes, headers: bytes = b"Host: gateway\r\n") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\n" + headers + b"Connection: close\r\n\r\n"


def echoed(response, name: str) -> list[str]:
    """Every value of header `name` that reached the echo server, from a raw answer."""
    assert response.status == 200, response
    return [value for key, value in response.json()["headers"] if key.lower() == name.lower()]


# -- the normalised path (kong/router/utils.lua -> kong/tools/uri.lua normalize) -------


@pytest.mark.parametrize(
    "sent, routed",
    [
        (b"/%70roducts", "/products"),  # an unreserved character, percent-encoded
        (b"/%70RODUCTS", None),  # decoding doesn't change case: no route
        (b"/products/%31", "/products/1"),
        (b"/x/../products", "/products"),
        (b"/../../products", "/products"),  # .. above the root stays at the root
        (b"/./products/./1", "/products/1"),
        (b"//products", "/products"),
        (b"/x//../products", "/products"),  # slashes merged first, as Kong does in the same pass
        (b"/products/%2E%2E/products/1", "/products/1"),
        (b"/products%2F1", None),  # a reserved character stays encoded
        (b"/products/1/..", None),  # /products/, which no route takes
    ],
)
def test_public_routes_match_the_normalised_path_and_the_service_gets_it(haproxy_gateway, sent, routed):
    response = exchange(haproxy_gateway, get(sent))

    if routed is None:
        assert (response.status, response.json()) == (404, NO_ROUTE)
    else:
        assert response.status == 200, response
        assert response.json()["path"] == routed


@pytest.mark.parametrize("sent", [b"/%6Frders", b"/%6frders", b"/x/../orders", b"//orders", b"/orders/."[:-2]])
def test_a_protected_route_spelt_another_way_is_still_protected(haproxy_gateway, make_token, sent):
    # Under Kong /%6Frders is the jwt-protected orders collection; so it is here.
    unauthenticated = exchange(haproxy_gateway, get(sent))
    authenticated = exchange(
        haproxy_gateway, get(sent, f"Host: gateway\r\nAuthorization: Bearer {make_token()}\r\n".encode())
    )

    assert (unauthenticated.status, unauthenticated.json()) == (401, {"message": "Unauthorized"})
    assert authenticated.json()["path"] == "/orders"
    assert echoed(authenticated, "X-User-Id") == ["42"]


# -- forwarded headers (kong/runloop/handler.lua, nginx_kong.lua's proxy_set_header) --


FORGED_FORWARDING = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Path": "/admin",
    "X-Forwarded-Prefix": "/admin",
    "X-Real-IP": "10.0.0.1",
    "Forwarded": "for=10.0.0.1;proto=https;host=evil.example",
    "X-Forwarded-Ssl": "on",
    "X-Forwarded-Protocol": "ssl",
}


def test_a_clients_forwarding_headers_are_replaced_by_the_gateways(haproxy_gateway):
    forged = "".join(f"{name}: {value}\r\n" for name, value in FORGED_FORWARDING.items()).encode()

    response = exchange(haproxy_gateway, get(b"/%70roducts?page=1", b"Host: Shop.Example:8000\r\n" + forged))

    assert echoed(response, "X-Forwarded-Proto") == ["http"]
    assert echoed(response, "X-Forwarded-Host") == ["shop.example"]  # nginx's $host
    assert echoed(response, "X-Forwarded-Port") == [haproxy_gateway.rsplit(":", 1)[1]]
    assert echoed(response, "X-Forwarded-Path") == ["/%70roducts"]  # as requested, without the query
    assert echoed(response, "X-Real-IP") == ["127.0.0.1"]
    for dropped in ("X-Forwarded-Prefix", "Forwarded", "X-Forwarded-Ssl", "X-Forwarded-Protocol"):
        assert echoed(response, dropped) == [], dropped


def test_the_clients_forwarded_for_is_kept_and_its_address_appended(haproxy_gateway):
    response = call(haproxy_gateway, "GET", "/products", headers={"X-Forwarded-For": "10.0.0.1"})

    assert ", ".join(upstream_headers(response, "X-Forwarded-For")) == "10.0.0.1, 127.0.0.1"


def test_an_ipv6_host_keeps_its_brackets_and_loses_its_port(haproxy_gateway):
    response = call(haproxy_gateway, "GET", "/products", headers={"Host": "[::1]:8000"})

    assert upstream_headers(response, "X-Forwarded-Host") == ["[::1]"]


def test_expect_is_answered_by_the_gateway_and_not_passed_on(haproxy_gateway):
    # nginx doesn't pass Expect on, and ignores expectations it doesn't know.
    response = call(haproxy_gateway, "GET", "/products", headers={"Expect": "something-else"})

    assert upstream_headers(response, "Expect") == []


def test_a_100_continue_client_gets_its_body_read_and_passed_on(haproxy_gateway):
    body = b'{"email":"a@example.com"}'
    head = (
        b"POST /register HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" % len(body)
    )
    with socket.create_connection(address(haproxy_gateway), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        response = read_response(sock)

    assert response.json()["body"] == body.decode()
    assert not [value for name, value in response.json()["headers"] if name.lower() == "expect"]


# -- nginx's limits, answered before any header is added --------------------------------


@pytest.mark.parametrize(
    "request_bytes, status, message",
    [
        (get(b"http:///products"), 400, "Bad request"),  # an absolute-form request line without a host
        (get(b"http://@/products"), 400, "Bad request"),
        (get(b"http://user@gateway/products"), 400, "Bad request"),
        (get(b"/products?" + b"q" * 8200), 414, "URI too long"),
        (get(b"/products", b"Host: " + b"h" * 9000 + b"\r\n"), 400, "Request header or cookie too large"),
        (
            get(b"/products", b"Host: gateway\r\nCookie: " + b"c" * 9000 + b"\r\n"),
            400,
            "Request header or cookie too large",
        ),
        (
            get(b"/products", b"Host: gateway\r\n" + b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 4000) for n in range(9))),
            400,
            "Request header or cookie too large",
        ),
    ],
    ids=["no-authority", "empty-user-info", "user-info", "9-kB-uri", "9-kB-host", "9-kB-cookie", "36-kB-of-headers"],
)
def test_what_nginx_refuses_is_refused_in_json_with_a_request_id(haproxy_gateway, request_bytes, status, message):
    response = exchange(haproxy_gateway, request_bytes)

    assert (response.status, response.json()) == (status, {"message": message}), response
    assert response.header("Content-Type").startswith("application/json")
    assert response.header("X-Request-ID")


@pytest.mark.parametrize(
    "request_bytes",
    [
        get(b"/products?" + b"q" * 8000),
        get(b"/products", b"Host: " + b"h" * 8000 + b"\r\n"),
        get(b"/" + b"p" * 8000, b"Host: " + b"h" * 8000 + b"\r\n"),
        get(b"/products", b"Host: gateway\r\n" + b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 7000) for n in range(4))),
    ],
    ids=["8-kB-uri", "8-kB-host", "8-kB-path-and-host", "28-kB-of-headers"],
)
def test_the_largest_requests_nginx_takes_leave_room_for_the_gateways_headers(haproxy_gateway, request_bytes):
    # A long Host or path is copied into X-Forwarded-Host/-Path: without the room
    # for that, HAProxy fails the request with a 500.
    response = exchange(haproxy_gateway, request_bytes)

    assert response.status in (200, 404), response
    assert response.header("Content-Type").startswith("application/json")


# -- the whole body before the service ---------------------------------------------------


class ArrivalHandler(BaseHTTPRequestHandler):
    """Notes each request's path the moment its headers arrive, then reads its body.
    (HAProxy's health checks are answered and not noted.)"""

    protocol_version = "HTTP/1.1"
    arrivals: list[str]

    def do_GET(self):  # noqa: N802 - the base class's naming
        if self.path == "/healthz":
            return self._answer(200, {"status": "ok"})
        self.arrivals.append(self.path)
        self._answer(
            200, {"path": self.path, "body": self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()}
        )

    do_POST = do_GET  # noqa: N815 - http.server's names

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture
def watched_gateway(start_gateway, echo_upstreams):
    """(gateway URL, the paths in the order the users service saw their headers)."""
    arrivals: list[str] = []
    handler = type("Arrivals", (ArrivalHandler,), {"arrivals": arrivals})
    with serving(handler, "arrivals") as users:
        yield start_gateway({**echo_upstreams, "users": users}), arrivals


def test_a_slow_upload_reaches_the_service_only_once_it_is_whole(watched_gateway):
    haproxy_gateway, arrivals = watched_gateway
    body = b'{"email": "slow@example.com", "password": "a-strong-password-123"}'
    with socket.create_connection(address(haproxy_gateway), timeout=10) as slow:
        slow.sendall(
            b"POST /register?slow HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:10]
        )
        # Another client's whole request goes through meanwhile: it reaches the
        # service first, though it was sent after the slow one's headers.
        assert call(haproxy_gateway, "POST", "/register?quick", json={}).status_code == 200
        assert arrivals == ["/register?quick"]
        slow.sendall(body[10:])
        response = read_response(slow)

    assert response.json() == {"path": "/register?slow", "body": body.decode()}
    assert arrivals == ["/register?quick", "/register?slow"]


def test_a_body_that_doesnt_arrive_in_time_is_a_json_408_and_never_reaches_the_service(watched_gateway):
    haproxy_gateway, arrivals = watched_gateway
    with socket.create_connection(address(haproxy_gateway), timeout=20) as stalled:
        stalled.sendall(
            b"POST /register HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\nX-Request-ID: stalled-1\r\nConnection: close\r\n\r\n{"email":'
        )
        response = read_response(stalled)  # after the gateway's 10 s for the body

    assert (response.status, response.json()) == (408, {"message": "Request timeout"})
    assert response.header("X-Request-ID") == "stalled-1"
    assert arrivals == []


# -- a service's own errors --------------------------------------------------------------


class UnavailableHandler(ArrivalHandler):
    """Alive (its health check passes), but its database is not: every request is a 503."""

    def do_GET(self):  # noqa: N802
        if self.path == "/healthz":
            return self._answer(200, {"status": "ok"})
        self._answer(503, {"message": "The database is unavailable; try again shortly."})


def test_a_services_own_503_is_passed_on_as_it_is(start_gateway, echo_upstreams):
    with serving(type("Unavailable", (UnavailableHandler,), {"arrivals": []}), "unavailable") as products:
        haproxy_gateway = start_gateway({**echo_upstreams, "products": products})

        response = call(haproxy_gateway, "GET", "/products")

    assert_json_error(response, 503, {"message": "The database is unavailable; try again shortly."})
    assert response.headers["X-Request-ID"]
