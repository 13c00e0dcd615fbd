"""The gateway contract at the HTTP edge, through port 8000, with requests sent
byte for byte (a client library would normalise them): the path Kong routes,
nginx's limits, what a service can't read, slow uploads, a service that is down.

Each test asserts what the gateway in front does (conftest's gateway_kind):
HAProxy natively, the rig's Kong stand-in (HAProxy from the same generator), or
real Kong, whose behaviour is cited from its 3.9.3 source where it matters.
Raw requests send Accept: application/json: Kong's error handler answers nginx's
own errors in the client's format, and in text/plain when it names none
(kong/error_handlers.lua, error_default_type in kong.conf).
"""

import json
import socket
import time
import uuid

import pytest
import requests

from tests.e2e.conftest import GATEWAY_URL, KONG, PASSWORD
from tests.e2e.errors import assert_error
from tests.rawhttp import address, exchange, read_response
from tests.support import eventually

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
    return exchange(GATEWAY_URL, request)


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


def test_an_encoded_slash_is_not_a_path_separator(gateway):
    assert_error(send(get(b"/products%2F1")), 404, "no Route matched with those values")


# -- nginx's limits under Kong, and requests the gateway itself once answered 500 --------


@pytest.mark.parametrize(
    "request_bytes, status, message",
    [
        # nginx: "client sent invalid host in request line"; HAProxy 2.6 passed it on, then failed (500).
        (b"GET http:///products HTTP/1.1\r\n" + HEADERS + b"Connection: close\r\n\r\n", 400, "Bad request"),
        # large_client_header_buffers 4 8k (kong/templates/nginx_kong.lua); 494 is answered as 400
        # (kong/error_handlers.lua). A Host this long made HAProxy fail its rewrites (500).
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
    # Both gateways pass these on (nginx refuses only NUL in a header value).
    response = send(get(b"/products", extra))

    assert_error(response, 400, "The request could not be read.")
    assert response.header("X-Request-ID")


@pytest.mark.parametrize(
    "extra",
    [b"X-Forwarded-Ssl: on\r\n", b"X-Forwarded-Protocol: ssl\r\nForwarded: proto=https\r\n", b"Expect: something\r\n"],
    ids=["x-forwarded-ssl", "x-forwarded-protocol", "unknown-expectation"],
)
def test_headers_that_once_made_gunicorn_refuse_a_request_change_nothing(gateway, extra):
    # Gunicorn takes the scheme from X-Forwarded-Proto only, which the gateway sets;
    # nginx and the stand-in don't pass Expect on.
    assert send(get(b"/products", extra)).status == 200


def test_a_chunked_body_with_a_trailer_gunicorn_refuses(gateway, gateway_kind):
    body = registration()
    request = (
        b"POST /register HTTP/1.1\r\n" + HEADERS + b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\nContent-Length: 5\r\n\r\n"
        % (len(body), body)
    )

    response = send(request)

    if gateway_kind == KONG:
        # nginx reads the chunked body whole and passes it on without its trailers.
        assert response.status == 201, response
    else:
        # HAProxy passes trailers on; Gunicorn refuses this one while the app reads
        # the body, and the service answers 400 instead of the 500 it once was.
        assert_error(response, 400, "The request body could not be read.")


# -- slow uploads: the whole body before the service (proxy_request_buffering on) --------


SLOW_CLIENTS = 12  # more than the users service has threads (2 processes x 4)


def test_slow_uploads_tie_up_no_service_and_time_out_alone(gateway, gateway_kind):
    body = registration()
    head = post(b"/register", body)[: -len(body)]
    slow = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection(address(GATEWAY_URL), timeout=20)
        sock.sendall(head + body[:5])
        slow.append(sock)
    # And one that never finishes its headers: HAProxy 2.6 answers it itself, early.
    stalled_headers = socket.create_connection(address(GATEWAY_URL), timeout=20)
    stalled_headers.sendall(head[:20])
    try:
        started = time.monotonic()
        others = [send(post(b"/register", registration())), send(get(b"/products"))]
        took = time.monotonic() - started

        assert [response.status for response in others] == [201, 200]
        assert took < 5, f"other clients waited {took:.1f}s behind the slow uploads"
        if gateway_kind == KONG:
            pytest.skip(
                "only real Kong can answer the rest: its nginx times a stalled body out after "
                "client_body_timeout (60 s by default, between two reads), too slow for this suite"
            )
        answers = [read_response(sock) for sock in slow]  # the gateway's 10 s for a body
        early = read_response(stalled_headers)  # its 10 s for the headers
    finally:
        for sock in [*slow, stalled_headers]:
            sock.close()

    for answer in answers:
        assert_error(answer, 408, "Request timeout")
        assert answer.header("X-Request-ID")
    # Before HAProxy 3.2 its mux ignores the configured error pages for these
    # (haproxy/haproxy#3032): the one 408 that isn't JSON (README, "Why HAProxy").
    assert (early.status, early.header("Content-Type"), early.body) == (408, "text/html", HAPROXY_408)


# -- what HAProxy 2.6 answers itself, before its rules run: pinned, and the only non-JSON --

HAPROXY_400 = b"<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n"
HAPROXY_408 = (
    b"<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n"
)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /products HTTP/1.1\r\nHost: shop\r\nBad Name: x\r\n\r\n",
        b"GET /products HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /pro ducts HTTP/1.1\r\nHost: shop\r\n\r\n",
        b"GET http://elsewhere/products HTTP/1.1\r\nHost: shop\r\n\r\n",
        b"POST /register HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /register HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"GET /products HTTP/1.1\r\nHost: shop\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(120)) + b"\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
    ],
    ids=[
        "bad-header-name",
        "two-hosts",
        "space-in-the-uri",
        "host-not-the-authority",
        "two-lengths",
        "bad-chunk-size",
        "120-headers",
        "tls-hello",
    ],
)
def test_what_haproxy_cant_parse_gets_its_own_html_400(gateway, gateway_kind, request_bytes):
    if gateway_kind == KONG:
        pytest.skip(
            "only real Kong can answer: nginx sends its 400s to Kong's error handler "
            "(kong/templates/nginx_kong.lua, error_page 400 ... /kong_error_handler), JSON for a JSON client"
        )
    response = send(request_bytes)

    assert (response.status, response.header("Content-Type"), response.body) == (400, "text/html", HAPROXY_400)
    assert response.header("X-Request-ID") is None


# -- a service that is down, or answers 503 itself -------------------------------------------


@pytest.fixture
def products_stopped(stack, gateway):
    """products down, and the gateway aware of it: its upstream fails at once.

    The wait matters on the container rig: there the stand-in re-resolves
    `products` through the network's DNS, and a request caught while the name
    disappears (the server going into maintenance in mid-connect) is closed with
    no response at all. Once the name is gone it answers as below."""
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


def test_a_services_503_and_the_gateways_own_are_json(gateway, gateway_kind, session_user, products_stopped):
    _, auth = session_user

    # orders is up, but the service it asks is not: orders' own 503, passed on as it is.
    placed = gateway.post("/orders", json={"items": [{"product_id": 1, "quantity": 1}]}, headers=auth)
    # products itself is down: the gateway answers.
    listed = gateway.get("/products", headers={"Accept": "application/json"})

    assert_error(placed, 503, "The products service is unavailable; try again shortly.")
    if gateway_kind == KONG:
        # nginx can't connect: 502, Kong's error handler's JSON (kong/error_handlers.lua).
        assert_error(listed, 502, "An invalid response was received from the upstream server")
    else:
        assert_error(listed, 503, "The upstream server is currently unavailable")
    assert listed.headers["X-Request-ID"]
