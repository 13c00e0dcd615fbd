"""The gateway contract at the HTTP edge, through port 8000, with requests sent
byte for byte (a client library would normalise them): the path Kong routes,
nginx's limits, what a service can't read, slow uploads, a service that is down.

Each test asserts what Kong 3.9.3 does, in every way the system runs, cited from
its source (and nginx's, which it runs) where it matters. Raw requests send
Accept: application/json, as API clients do; Kong's error handler answers
nginx's own errors in the client's format, and in JSON when it names none
(kong/error_handlers.lua; KONG_ERROR_DEFAULT_TYPE in kong/kong.env).
"""

import json
import socket
import time
import uuid

import pytest
import requests

from tests.e2e.conftest import GATEWAY_URL, PASSWORD
from tests.e2e.errors import assert_error
from tests.rawhttp import address, exchange
from tests.support import eventually, politely

pytestmark = pytest.mark.e2e

HEADERS = b"Host: shop\r\nAccept: application/json\r\n"


def get(path: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\n" + HEADERS + headers + b"Connection: close\r\n\r\n"


def post(path: bytes, body: bytes, headers: bytes = b"") -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\n"
        + HEADERS
        + b"Content-Type: application/json\r\n"
        + b"Content-Length: %d\r\n" % len(body)
        + headers
        + b"Connection: close\r\n\r\n"
        + body
    )


def send(request: bytes):
    """Send `request` as is (again after the gateway's 429: tests.support.politely)."""
    return politely(lambda: exchange(GATEWAY_URL, request))


def registration() -> bytes:
    return json.dumps({"email": f"edge-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}).encode()


# -- the path Kong routes: kong/router/utils.lua:63 -> kong/tools/uri.lua normalize -----


@pytest.mark.parametrize("path", [b"/%6Frders", b"/%6frders", b"/x/../orders", b"//orders", b"/./orders"])
def test_the_protected_orders_collection_spelt_another_way_is_still_protected(gateway, session_user, path):
    _, auth = session_user

    refused = send(get(path))
    allowed = send(get(path, f"Authorization: {auth['Authorization']}\r\n".encode()))

    assert_error(refused, 401, "Unauthorized")
    assert allowed.status == 200, allowed
    assert {"items", "total"} <= allowed.json().keys()


@pytest.mark.parametrize("path", [b"/%70roducts", b"/products/../products", b"//products"])
def test_public_routes_match_the_normalised_path_too(gateway, path):
    response = send(get(path))

    assert response.status == 200, response
    assert {"items", "total"} <= response.json().keys()


@pytest.mark.parametrize("path", [b"/products/..%2F..%2Fetc%2Fpasswd", b"/../../products", b"/products/../../orders"])
def test_a_path_that_climbs_above_the_root_is_nginxs_400(gateway, path):
    # nginx decodes %2F and resolves dot segments while it parses the request
    # line; one that climbs above / is an invalid request (src/http/ngx_http_parse.c,
    # ngx_http_parse_complex_uri: sw_dot_dot ... return NGX_HTTP_PARSE_INVALID_REQUEST),
    # answered by Kong's error handler before any route is looked up.
    response = send(get(path))

    assert_error(response, 400, "Bad request")
    assert response.header("X-Request-ID")


def test_an_encoded_slash_is_not_a_path_separator(gateway):
    assert_error(send(get(b"/products%2F1")), 404, "no Route matched with those values")


# -- nginx's limits under Kong, and requests the gateway itself once answered 500 --------


@pytest.mark.parametrize(
    "request_bytes, status, message",
    [
        # nginx: "client sent invalid host in request line".
        (b"GET http:///products HTTP/1.1\r\n" + HEADERS + b"Connection: close\r\n\r\n", 400, "Bad request"),
        # large_client_header_buffers 4 8k (kong/templates/nginx_kong.lua); 494 is answered as 400
        # (kong/error_handlers.lua).
        (
            b"GET /products HTTP/1.1\r\nHost: "
            + b"h" * 9000
            + b"\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            400,
            "Request header or cookie too large",
        ),
        (get(b"/products?" + b"q" * 9000), 414, "URI too long"),
    ],
    ids=["absolute-form-without-a-host", "9-kB-host", "9-kB-uri"],
)
def test_what_nginx_refuses_is_a_json_error_with_a_request_id(gateway, request_bytes, status, message):
    response = send(request_bytes)

    assert_error(response, status, message)
    assert response.header("X-Request-ID")


def test_a_long_host_that_nginx_takes_is_served(gateway):
    response = send(b"GET /products HTTP/1.1\r\nHost: " + b"h" * 7000 + b"\r\nConnection: close\r\n\r\n")

    assert response.status == 200, response


# -- what a service can't read: JSON from the service (common/gunicorn_worker.py) --------


@pytest.mark.parametrize(
    "extra",
    [b"X-Note: a\x01b\r\n", b"Content-Type: text/plain\r\nContent-Type: application/json\r\n"],
    ids=["control-character", "two-content-types"],
)
def test_headers_gunicorn_refuses_are_a_json_400(gateway, extra):
    # nginx passes these on (it refuses only NUL in a header value).
    response = send(get(b"/products", extra))

    assert_error(response, 400, "The request could not be read.")
    assert response.header("X-Request-ID")


@pytest.mark.parametrize(
    "extra",
    [b"X-Forwarded-Ssl: on\r\n", b"X-Forwarded-Protocol: ssl\r\nForwarded: proto=https\r\n", b"Expect: something\r\n"],
    ids=["x-forwarded-ssl", "x-forwarded-protocol", "unknown-expectation"],
)
def test_headers_that_once_made_gunicorn_refuse_a_request_change_nothing(gateway, extra):
    # Gunicorn takes the scheme from X-Forwarded-Proto only, which Kong sets;
    # nginx doesn't pass Expect on.
    assert send(get(b"/products", extra)).status == 200


def test_a_chunked_body_is_passed_on_without_its_trailers(gateway):
    body = registration()
    request = (
        b"POST /register HTTP/1.1\r\n" + HEADERS + b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\nContent-Length: 5\r\n\r\n"
        % (len(body), body)
    )

    response = send(request)

    # nginx reads the chunked body whole (proxy_request_buffering) and passes it
    # on with a Content-Length, without the trailer that would contradict it.
    assert response.status == 201, response


# -- slow clients: kong/kong.env's 10 s for the headers and between two reads of the body --


SLOW_CLIENTS = 12  # more than the users service has threads (2 processes x 4)
CLIENT_TIMEOUT = 10  # KONG_NGINX_HTTP_CLIENT_HEADER_TIMEOUT, _CLIENT_BODY_TIMEOUT


def test_slow_clients_tie_up_no_service_and_are_cut_off_alone(gateway):
    body = registration()
    head = post(b"/register", body)[: -len(body)]
    slow = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection(address(GATEWAY_URL), timeout=CLIENT_TIMEOUT + 10)
        sock.sendall(head + body[:5])
        slow.append(sock)
    stalled_headers = socket.create_connection(address(GATEWAY_URL), timeout=CLIENT_TIMEOUT + 10)
    stalled_headers.sendall(head[:20])
    started = time.monotonic()
    try:
        others = [send(post(b"/register", registration())), send(get(b"/products"))]
        took = time.monotonic() - started
        # nginx closes a connection whose client_header_timeout or client_body_timeout
        # ran out without an answer: ngx_http_read_request_header and
        # ngx_http_do_read_client_request_body set c->timedout and close, with a
        # 408 only in its log. The client held one of nginx's connections, nothing more.
        leftovers = [sock.recv(1024) for sock in [*slow, stalled_headers]]
        cut_off_after = time.monotonic() - started
    finally:
        for sock in [*slow, stalled_headers]:
            sock.close()

    assert [response.status for response in others] == [201, 200]
    assert took < 5, f"other clients waited {took:.1f}s behind the slow ones"
    assert leftovers == [b""] * (SLOW_CLIENTS + 1)
    assert CLIENT_TIMEOUT - 1 <= cut_off_after < CLIENT_TIMEOUT + 5


# -- what nginx can't parse: Kong's JSON 400, before any plugin or service --------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /products HTTP/1.1\r\nHost: shop\r\nBad Name: x\r\n",
        b"GET /products HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
        b"GET /pro ducts HTTP/1.1\r\nHost: shop\r\n",
        b"POST /register HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\nContent-Length: 3\r\n",
        b"GET /orders HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer a.b.c\r\nAuthorization: Bearer a.b.c\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n",
    ],
    ids=["bad-header-name", "two-hosts", "space-in-the-uri", "two-lengths", "two-authorizations", "tls-hello"],
)
def test_what_nginx_cant_parse_is_kongs_json_400(gateway, request_bytes):
    # nginx refuses these while it reads the request (ngx_http_request.c: a second
    # Host or Authorization, both "unique" headers in ngx_http_headers_in; a second
    # Content-Length; ngx_http_parse.c: the request line) and sends its 400 to
    # Kong's error handler (nginx_kong.lua: error_page 400 ... /kong_error_handler).
    response = send(request_bytes + b"Accept: application/json\r\nConnection: close\r\n\r\n")

    assert_error(response, 400, "Bad request")
    assert response.header("X-Request-ID")


def test_a_bad_chunk_size_is_kongs_json_400(gateway):
    request = (
        b"POST /register HTTP/1.1\r\n" + HEADERS + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n"
    )

    assert_error(send(request), 400, "Bad request")


def test_more_than_100_headers_are_refused_before_any_token_check(gateway):
    # Lua sees only lua_max_req_headers (100) of them (kong/pdk/request.lua,
    # get_headers); the pre-function (kong.yml) refuses the rest rather than let
    # an Authorization hide past the 100th from it while the jwt plugin reads it.
    many = b"".join(b"X-H%d: v\r\n" % n for n in range(100))

    response = send(get(b"/orders", many + b"Authorization: Bearer MQ.e30.eA\r\n"))

    assert_error(response, 431, "Too many request headers")


def test_an_underscored_identity_header_is_dropped_by_nginx(gateway, session_user):
    # kong/kong.env turns underscores_in_headers off in the proxy server: nginx
    # drops X_User_Id before Lua or a service sees it (ignore_invalid_headers).
    user_id, auth = session_user
    headers = f"Authorization: {auth['Authorization']}\r\nX_User_Id: 999999\r\n".encode()

    response = send(get(b"/users/me", headers))

    assert response.status == 200, response
    assert response.json()["id"] == user_id


# -- a service that is down, or answers 503 itself -------------------------------------------


@pytest.fixture
def products_stopped(stack, gateway):
    """products down, and the gateway answering so."""
    stack.stop("products")

    def gateway_answers_an_error():
        """GET /products through the gateway answers with a server error"""
        try:
            return gateway.get("/products", headers={"Accept": "application/json"}).status_code >= 500
        except requests.ConnectionError:
            return False

    try:
        eventually(gateway_answers_an_error, deadline=30, interval=0.5)
        yield
    finally:
        stack.start("products")


# What Kong answers for a service that is down: refused at once (502, nginx's,
# through kong/error_handlers.lua), a name that no longer resolves, as when its
# container is gone under compose (503, kong/runloop/balancer/init.lua 384), or no
# connection within kong.yml's connect_timeout (504, kong/error_handlers.lua).
GATEWAY_ERRORS = {
    502: {"An invalid response was received from the upstream server"},
    503: {"name resolution failed", "The upstream server is currently unavailable"},
    504: {"The upstream server is timing out"},
}


def test_a_services_503_and_the_gateways_own_are_json(gateway, session_user, products_stopped):
    _, auth = session_user

    # orders is up, but the service it asks is not: orders' own 503, passed on as it is.
    placed = gateway.post("/orders", json={"items": [{"product_id": 1, "quantity": 1}]}, headers=auth)
    # products itself is down: Kong answers, within connect_timeout (2 s) a try.
    started = time.monotonic()
    listed = gateway.get("/products", headers={"Accept": "application/json"})
    took = time.monotonic() - started

    assert_error(placed, 503, "The products service is unavailable; try again shortly.")
    assert listed.status_code in GATEWAY_ERRORS, listed.text
    assert listed.json()["message"] in GATEWAY_ERRORS[listed.status_code], listed.text
    assert listed.headers["Content-Type"].startswith("application/json")
    assert listed.headers["X-Request-ID"]
    assert took < 7, f"a client waited {took:.1f}s for a service that is down"
