"""What Kong's nginx does around the plugins: the normalised path, the forwarded
headers, the request's size limits, headers it drops, and the whole body read
before a service sees the request.

Real Kong in front of echo servers (and, where a test needs to see whether and
when a request arrives, an upstream of its own); requests a client library
would fix up go over bare sockets (tests/rawhttp.py).
"""

import json
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

import pytest

from tests.gateway.conftest import serving
from tests.gateway.helpers import NO_ROUTE, assert_jwt_error, assert_kong_error, call, get, upstream_headers
from tests.rawhttp import address, exchange, read_response

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SIZE_LIMIT = 64 * 1024  # kong.env: KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE
# nginx's own 413, through Kong's error handler (kong/error_handlers.lua 20).
PAYLOAD_TOO_LARGE = "Payload too large"


# -- the normalised path ----------------------------------------------------------------
#
# nginx parses the request line first (src/http/ngx_http_parse.c, ngx_http_parse_complex_uri);
# then Kong's router matches the path normalised by kong/tools/uri.lua (normalize): unreserved
# characters decoded, reserved ones such as %2F left encoded, dot segments and double
# slashes removed. The service gets that normalised path.


@pytest.mark.parametrize(
    "sent, routed",
    [
        (b"/%70roducts", "/products"),  # an unreserved character, percent-encoded
        (b"/products/%31", "/products/1"),
        (b"/x/../products", "/products"),
        (b"/./products/./1", "/products/1"),
        (b"//products", "/products"),
        (b"/x//../products", "/products"),
        (b"/products/%2E%2E/products/1", "/products/1"),
    ],
)
def test_public_routes_match_the_normalised_path_and_the_service_gets_it(kong_gateway, sent, routed):
    response = exchange(kong_gateway, get(sent))

    assert response.status == 200, response
    assert response.json()["path"] == routed


@pytest.mark.parametrize(
    "sent",
    [
        b"/%70RODUCTS",  # decoding doesn't change case
        b"/products%2F1",  # %2F stays encoded (uri.lua: a reserved character): no separator
        b"/orders%2F7",
        b"/products/1/..",  # /products/, which no route takes
    ],
)
def test_paths_that_normalise_to_no_route_are_404(kong_gateway, sent):
    assert_kong_error(exchange(kong_gateway, get(sent)), 404, NO_ROUTE)


@pytest.mark.parametrize(
    "sent",
    [
        b"/../../products",
        b"/products/../../products",
        # nginx decodes an escape back into the state it was in (ngx_http_parse.c 1519-1534),
        # so "..%2F" is "../" to its dot-segment code: this climbs too.
        b"/products/..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_a_path_that_climbs_above_the_root_is_nginxs_400(kong_gateway, sent):
    # ngx_http_parse.c 1460-1467: ".." with nothing left to remove is an invalid
    # request, before Kong sees it. The HAProxy stand-in kept such paths at the root
    # and routed them.
    assert_kong_error(exchange(kong_gateway, get(sent)), 400, "Bad request")


@pytest.mark.parametrize("sent", [b"/%6Frders", b"/%6frders", b"/x/../orders", b"//orders", b"/./orders"])
def test_a_protected_route_spelt_another_way_is_still_protected(kong_gateway, make_token, sent):
    unauthenticated = exchange(kong_gateway, get(sent))
    authenticated = exchange(
        kong_gateway, get(sent, f"Host: gateway\r\nAuthorization: Bearer {make_token()}\r\n".encode())
    )

    assert_jwt_error(unauthenticated, {"message": "Unauthorized"})
    assert authenticated.json()["path"] == "/orders"
    assert upstream_headers(authenticated, "X-User-Id") == ["42"]


# -- forwarded headers (kong/runloop/handler.lua 1225-1353, nginx_kong.lua's proxy_set_header) --


def test_a_clients_forwarding_headers_are_replaced_by_kongs(kong_gateway):
    forged = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Path": "/admin",
        "X-Forwarded-Prefix": "/admin",
        "X-Real-IP": "10.0.0.1",
    }
    headers = "".join(f"{name}: {value}\r\n" for name, value in forged.items()).encode()

    response = exchange(kong_gateway, get(b"/%70roducts?page=1", b"Host: Shop.Example:8000\r\n" + headers))

    # Loopback is not in trusted_ips (Kong's default: none), so handler.lua 1242-1246 applies.
    assert upstream_headers(response, "X-Forwarded-Proto") == ["http"]
    assert upstream_headers(response, "X-Forwarded-Host") == ["shop.example"]  # nginx's $host
    assert upstream_headers(response, "X-Forwarded-Port") == [kong_gateway.rsplit(":", 1)[1]]
    assert upstream_headers(response, "X-Forwarded-Path") == ["/%70roducts"]  # as requested, without the query
    assert upstream_headers(response, "X-Real-IP") == ["127.0.0.1"]
    # Kong reports a trusted client's prefix or a route's matched prefix (handler.lua 1240,
    # 1256-1258), neither here: the variable is empty, so nginx sends no header.
    assert upstream_headers(response, "X-Forwarded-Prefix") == []


def test_forwarding_headers_kong_doesnt_know_pass_untouched(kong_gateway):
    # Kong sets only the X-Forwarded-* it lists (nginx_kong.lua 195-201); the
    # HAProxy stand-in dropped these. The services read X-Forwarded-Proto only.
    headers = b"Host: gateway\r\nForwarded: for=10.0.0.1;proto=https\r\nX-Forwarded-Ssl: on\r\n"

    response = exchange(kong_gateway, get(b"/products", headers))

    assert upstream_headers(response, "Forwarded") == ["for=10.0.0.1;proto=https"]
    assert upstream_headers(response, "X-Forwarded-Ssl") == ["on"]


def test_the_clients_forwarded_for_is_kept_and_its_address_appended(kong_gateway):
    # handler.lua 1340-1343.
    response = call(kong_gateway, "GET", "/products", headers={"X-Forwarded-For": "10.0.0.1, 10.0.0.2"})

    assert upstream_headers(response, "X-Forwarded-For") == ["10.0.0.1, 10.0.0.2, 127.0.0.1"]


def test_without_a_forwarded_for_the_client_address_is_sent(kong_gateway):
    response = call(kong_gateway, "GET", "/products")

    assert upstream_headers(response, "X-Forwarded-For") == ["127.0.0.1"]


def test_of_two_forwarded_for_headers_only_the_first_is_kept(kong_gateway):
    # kong/tools/http.lua 562-563 (get_header): the first value of a repeated header.
    headers = b"Host: gateway\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n"

    response = exchange(kong_gateway, get(b"/products", headers))

    assert upstream_headers(response, "X-Forwarded-For") == ["10.0.0.1, 127.0.0.1"]


def test_an_ipv6_host_keeps_its_brackets_and_loses_its_port(kong_gateway):
    response = call(kong_gateway, "GET", "/products", headers={"Host": "[::1]:8000"})

    assert upstream_headers(response, "X-Forwarded-Host") == ["[::1]"]


# -- Expect ------------------------------------------------------------------------------


def test_an_unknown_expectation_is_ignored_and_not_passed_on(kong_gateway):
    # nginx's proxy module clears Expect (ngx_http_proxy_module.c, ngx_http_proxy_headers).
    response = call(kong_gateway, "GET", "/products", headers={"Expect": "something-else"})

    assert upstream_headers(response, "Expect") == []


def test_a_100_continue_client_gets_its_body_read_and_passed_on(kong_gateway):
    body = b'{"email":"a@example.com"}'
    head = (
        b"POST /register HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" % len(body)
    )
    with socket.create_connection(address(kong_gateway), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        response = read_response(sock)

    assert response.json()["body"] == body.decode()
    assert upstream_headers(response, "Expect") == []


def test_a_100_continue_client_with_an_oversized_length_gets_413_and_no_continue(kong_gateway):
    # nginx compares Content-Length with client_max_body_size while it finds the
    # location, before any plugin, and marks the expectation tested
    # (ngx_http_core_module.c 985-996), so no 100 Continue precedes the 413 and
    # the client never sends its body.
    head = (
        b"POST /register HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2097152\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(address(kong_gateway), timeout=5) as sock:
        sock.sendall(head)
        recording = Recording(sock)
        response = read_response(recording)

    assert recording.received.startswith(b"HTTP/1.1 413 "), recording.received  # nothing before it
    assert_kong_error(response, 413, PAYLOAD_TOO_LARGE)


class Recording:
    """A socket's recv, keeping every byte received: read_response skips 1xx answers."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.received = b""

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.received += data
        return data


# -- nginx's limits, answered in JSON by Kong's error handler ----------------------------


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
        # The proxy listener speaks HTTP/1.1 only (KONG_PROXY_LISTEN has no http2).
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"), 400, "Bad request"),
    ],
    ids=[
        "no-authority",
        "empty-user-info",
        "user-info",
        "9-kB-uri",
        "9-kB-host",
        "9-kB-cookie",
        "36-kB-of-headers",
        "http2-preface",
    ],
)
def test_what_nginx_refuses_is_refused_in_json_with_a_request_id(kong_gateway, request_bytes, status, message):
    # Kong's error_page (nginx_kong.lua 100-102) turns nginx's errors into its JSON
    # (KONG_ERROR_DEFAULT_TYPE: a client that sends no Accept gets JSON too).
    response = exchange(kong_gateway, request_bytes)

    assert_kong_error(response, status, message)
    assert response.header("X-Request-ID")


@pytest.mark.parametrize(
    "request_bytes",
    [
        get(b"/products?" + b"q" * 8000),
        get(b"/products", b"Host: " + b"h" * 8000 + b"\r\n"),
        get(b"/products", b"Host: gateway\r\nX-Big: " + b"b" * 8180 + b"\r\n"),
        get(b"/products", b"Host: gateway\r\n" + b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 7000) for n in range(4))),
    ],
    ids=["8-kB-uri", "8-kB-host", "8-kB-header-line", "28-kB-of-headers"],
)
def test_the_largest_requests_nginx_takes_are_proxied(kong_gateway, request_bytes):
    # nginx's default large_client_header_buffers 4 8k (Kong's template sets none):
    # each line within 8 KiB, all of them within 32 KiB.
    response = exchange(kong_gateway, request_bytes)

    assert response.status == 200, response


# -- headers nginx drops -------------------------------------------------------------------


def test_header_names_with_underscores_never_reach_a_service(kong_gateway, make_token):
    # kong.env turns underscores_in_headers off in the proxy server: nginx ignores
    # such a header (ngx_http_request.c 1450-1465) before Lua or a service sees it,
    # so no spelling of X-User-Id slips past the post-function.
    headers = (
        b"Host: gateway\r\nX_User_Id: 7\r\nx_user_id: 7\r\nX_Consumer_ID: admin\r\nX_Anything: 1\r\n"
        + f"Authorization: Bearer {make_token()}\r\n".encode()
    )

    public = exchange(kong_gateway, get(b"/products", b"Host: gateway\r\nX_User_Id: 7\r\nX_Anything: 1\r\n"))
    protected = exchange(kong_gateway, get(b"/orders", headers))

    for response in (public, protected):
        names = [name.lower() for name, _ in response.json()["headers"]]
        assert not [name for name in names if "_" in name], names
    assert upstream_headers(protected, "X-User-Id") == ["42"]


# -- more than 100 headers -------------------------------------------------------------------


def many_headers(count: int) -> bytes:
    return b"".join(b"X-Filler-%d: v\r\n" % number for number in range(count))


def test_a_hundred_headers_are_proxied(kong_gateway):
    # Host, Connection and 98 more: lua_max_req_headers (100, kong_defaults.lua) exactly.
    response = exchange(kong_gateway, get(b"/products", b"Host: gateway\r\n" + many_headers(98)))

    assert response.status == 200, response


def test_more_than_a_hundred_headers_is_the_pre_functions_431(kong_gateway):
    response = exchange(kong_gateway, get(b"/products", b"Host: gateway\r\n" + many_headers(99)))

    assert_kong_error(response, 431, "Too many request headers")
    assert response.header("X-Request-ID")


# -- chunked bodies ---------------------------------------------------------------------------


def chunked_post(path: bytes, body: bytes, trailers: bytes = b"") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n%s\r\n"
        % (len(body), body, trailers)
    )


def test_a_chunked_body_reaches_the_service_with_a_length_and_without_its_trailers(kong_gateway):
    # nginx reads the whole body (proxy_request_buffering on, nginx_kong.lua 183) and
    # sends it with a Content-Length; trailers are read and dropped, never passed on
    # as headers. (The HAProxy stand-in passed the body on chunked.)
    body = b'{"email":"a@example.com"}'

    response = exchange(kong_gateway, chunked_post(b"/register", body, b"X-Trailer: t\r\nX-User-Id: 1\r\n"))

    assert response.json()["body"] == body.decode()
    assert upstream_headers(response, "Content-Length") == [str(len(body))]
    assert upstream_headers(response, "Transfer-Encoding") == []
    assert upstream_headers(response, "X-Trailer") == []
    assert upstream_headers(response, "X-User-Id") == []


# -- when a request reaches the service ------------------------------------------------------


class ArrivalHandler(BaseHTTPRequestHandler):
    """Notes each request's path the moment its headers arrive, then reads its body
    and answers with what it got."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as EchoHandler
    arrivals: list[str]

    def do_GET(self):  # noqa: N802 - the base class's naming
        self.arrivals.append(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self._answer(200, {"path": self.path, "body": body, "headers": list(self.headers.items())})

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
        yield start_gateway({**echo_upstreams, "users": users}).url, arrivals


def test_an_authorization_header_beyond_the_hundredth_never_reaches_the_service(watched_gateway, make_token):
    # Beyond lua_max_req_headers a header is invisible to the pre-function's
    # get_headers() but not to the jwt plugin's get_header(): the 431 closes that gap.
    gateway, arrivals = watched_gateway
    authorization = f"Authorization: Bearer {make_token()}\r\n".encode()

    hundredth = exchange(gateway, get(b"/users/me", b"Host: gateway\r\n" + many_headers(97) + authorization))
    hundred_and_first = exchange(gateway, get(b"/users/me", b"Host: gateway\r\n" + many_headers(98) + authorization))

    assert upstream_headers(hundredth, "X-User-Id") == ["42"]
    assert_kong_error(hundred_and_first, 431, "Too many request headers")
    assert arrivals == ["/users/me"]  # the first request only


def test_a_slow_upload_reaches_the_service_only_once_it_is_whole(watched_gateway):
    gateway, arrivals = watched_gateway
    body = b'{"email": "slow@example.com", "password": "a-strong-password-123"}'
    with socket.create_connection(address(gateway), timeout=10) as slow:
        slow.sendall(
            b"POST /register?slow HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:10]
        )
        # Another client's whole request goes through meanwhile: it reaches the
        # service first, though it was sent after the slow one's headers.
        assert call(gateway, "POST", "/register?quick", json={}).status_code == 200
        assert arrivals == ["/register?quick"]
        slow.sendall(body[10:])
        response = read_response(slow)

    assert response.json()["body"] == body.decode()
    assert arrivals == ["/register?quick", "/register?slow"]


STALLED = {
    # client_header_timeout: the request line and headers must be whole within 10 s...
    "request-line": b"POST /register HT",
    "headers": b"POST /register HTTP/1.1\r\nHost: gateway\r\nContent-Ty",
    # ... and client_body_timeout: 10 s at most between two reads of the body.
    "declared-body": (
        b"POST /register HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"email":'
    ),
    "chunked-body": (
        b"POST /register HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n64\r\n{"email":'
    ),
}
HEADER_TIMEOUT = 10.0  # kong.env: KONG_NGINX_HTTP_CLIENT_HEADER_TIMEOUT and _BODY_TIMEOUT


def until_closed(gateway: str, data: bytes, trickle: bytes = b"") -> tuple[bytes, float]:
    """Connect, send `data`, then wait: everything the server sent before it closed
    the connection, and how many seconds after connecting it closed it. With
    `trickle`, a byte of that is sent every half second meanwhile."""
    with socket.create_connection(address(gateway), timeout=5) as sock:
        connected = time.monotonic()
        sock.sendall(data)
        received = b""
        while time.monotonic() < connected + HEADER_TIMEOUT + 5:
            if trickle:
                try:
                    sock.sendall(trickle[:1])
                except OSError:  # closed by the server
                    break
                trickle = trickle[1:]
            if select.select([sock], [], [], 0.5)[0]:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
        return received, time.monotonic() - connected


def test_stalled_and_trickling_clients_are_cut_off_after_10_s_without_an_answer(watched_gateway):
    # All at once, so that they cost one timeout. nginx closes such a connection
    # without a response: ngx_http_request.c 1097-1100 and 1386-1389 (request line,
    # headers), ngx_http_request_body.c 280-283 -> ngx_http_finalize_request, which
    # terminates on a 408 (ngx_http_request.c 2518-2527). The header timeout is one
    # deadline for all of the headers, not one per read: a client trickling a
    # byte every half second is cut off too.
    gateway, arrivals = watched_gateway
    with ThreadPoolExecutor(max_workers=len(STALLED) + 1) as pool:
        stalled = {name: pool.submit(until_closed, gateway, data) for name, data in STALLED.items()}
        trickled = pool.submit(until_closed, gateway, b"POST /register HTTP/1.1\r\nHost: gateway\r\n", b"X-Slow: 1" * 4)
        # Meanwhile Kong serves everyone else.
        assert call(gateway, "POST", "/register", json={}).status_code == 200
        closed = {name: future.result() for name, future in [*stalled.items(), ("trickled-headers", trickled)]}

    for name, (received, after) in closed.items():
        assert received == b"", f"{name}: {received[:200]!r}"
        assert HEADER_TIMEOUT - 0.5 <= after <= HEADER_TIMEOUT + 2, f"{name}: closed after {after:.1f}s"
    assert arrivals == ["/register"]  # the other client's, none of the stalled ones
