"""Kong's cross-cutting plugins and settings as kong.yml and kong/kong.env set
them: correlation-id, response-transformer, KONG_HEADERS, nginx's body size limit,
rate-limiting, prometheus, and the global post-function's identity headers.

Real Kong in front of echo servers. The rate-limit tests each send from a
loopback address of their own (any 127.x.y.z is this host), so no test uses up
another's limit on the shared Kong.
"""

import re
import select
import socket
import time
import uuid

import pytest
import requests

from tests.gateway.conftest import ISSUER
from tests.gateway.helpers import (
    LIMITS,
    NO_ROUTE,
    OPENAPI,
    PROTECTED,
    PUBLIC,
    TIMEOUT,
    UUID,
    assert_kong_error,
    call,
    get,
    upstream_headers,
)
from tests.rawhttp import address, exchange, read_response
from tests.support import client_from, fresh_loopback_addresses

pytestmark = pytest.mark.integration

IDENTITY = {
    "X-User-Id": "1",
    "X-Consumer-ID": "00000000-0000-0000-0000-000000000001",
    "X-Consumer-Custom-ID": "admin",
    "X-Consumer-Username": "users-service",
    "X-Credential-Identifier": ISSUER,
    "X-Anonymous-Consumer": "false",
}
MIB = 1024 * 1024
SIZE_LIMIT = 64 * 1024  # kong.env: KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE
PAYLOAD_TOO_LARGE = "Payload too large"  # nginx's 413, in Kong's error handler (kong/error_handlers.lua 20)
RATE_LIMITED = "API rate limit exceeded"
LIMITED = pytest.mark.parametrize("path, limit", LIMITS.items())
SOURCES = fresh_loopback_addresses(0)


@pytest.fixture
def new_client():
    """Factory: a session from a loopback address no other test uses."""
    sessions = []

    def make() -> requests.Session:
        sessions.append(client_from(next(SOURCES)))
        return sessions[-1]

    yield make
    for session in sessions:
        session.close()


def whole_minute_ahead(needed: float = 5.0) -> None:
    """Kong counts per clock minute: don't start a count that the next minute would cut in two."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.05)


def chunks(total: int, size: int):
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


# -- correlation-id -------------------------------------------------------------------


def test_a_request_without_an_id_gets_a_uuid_upstream_and_back(kong_gateway):
    response = call(kong_gateway, "GET", "/products")

    [sent] = upstream_headers(response, "X-Request-ID")
    assert UUID.fullmatch(sent)
    assert response.headers["X-Request-ID"] == sent


def test_each_request_gets_an_id_of_its_own(kong_gateway):
    ids = {call(kong_gateway, "GET", "/products").headers["X-Request-ID"] for _ in range(3)}

    assert len(ids) == 3


@pytest.mark.parametrize(
    "request_id",
    ["abc-123", str(uuid.uuid4()), "has space", "a,b", 'quote"d', "x" * 300],
    ids=["plain", "uuid", "space", "comma", "quote", "300-chars"],
)
def test_a_client_id_is_kept_upstream_and_echoed_as_it_is(kong_gateway, request_id):
    # correlation-id (its handler.lua 57-63) takes whatever the client sent; the
    # HAProxy stand-in replaced all but plain ids. The services log the id as a
    # JSON string (kong.yml), so no value can forge a log line.
    response = call(kong_gateway, "GET", "/products", headers={"X-Request-ID": request_id})

    assert upstream_headers(response, "X-Request-ID") == [request_id]
    assert response.headers["X-Request-ID"] == request_id


def test_an_empty_client_id_is_replaced_by_a_uuid(kong_gateway):
    response = exchange(
        kong_gateway, b"GET /products HTTP/1.1\r\nHost: x\r\nX-Request-ID:\r\nConnection: close\r\n\r\n"
    )

    [sent] = upstream_headers(response, "X-Request-ID")
    assert UUID.fullmatch(sent)
    assert response.header("X-Request-ID") == sent


def test_of_two_client_ids_the_first_is_echoed_and_both_are_passed_on(kong_gateway):
    # kong.request.get_header returns the first (correlation-id's handler.lua 57), which
    # is there, so nothing is set: the request goes on with both. (The stand-in
    # replaced both with one uuid.)
    response = exchange(
        kong_gateway,
        b"GET /products HTTP/1.1\r\nHost: x\r\nX-Request-ID: one\r\nX-Request-ID: two\r\nConnection: close\r\n\r\n",
    )

    assert upstream_headers(response, "X-Request-ID") == ["one", "two"]
    assert [value for name, value in response.headers if name.lower() == "x-request-id"] == ["one"]


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/nowhere", 404), ("GET", "/orders", 401), ("POST", "/register", 413)],
    ids=["no-route", "no-token", "too-large"],
)
def test_kongs_own_answers_echo_the_id_too(kong_gateway, method, path, status):
    data = b"x" * (SIZE_LIMIT + 1) if status == 413 else None

    response = call(kong_gateway, method, path, headers={"X-Request-ID": "trace-me"}, data=data)

    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "trace-me"


# -- response-transformer and KONG_HEADERS ----------------------------------------------


def test_proxied_responses_lose_banners_and_gain_nosniff(kong_gateway):
    response = call(kong_gateway, "GET", "/products", headers={"X-Reply-X-Powered-By": "Express 4.18"})

    assert response.status_code == 200
    assert "Server" not in response.headers  # the echo server sends BaseHTTP/… Python/…
    assert "X-Powered-By" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_services_own_nosniff_header_is_left_alone(kong_gateway):
    # response-transformer's "add" adds a header only where there is none.
    response = call(kong_gateway, "GET", "/products", headers={"X-Reply-X-Content-Type-Options": "nosniff-by-service"})

    assert response.headers["X-Content-Type-Options"] == "nosniff-by-service"


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        ("GET", "/nowhere", {}, 404),
        ("GET", "/orders", {}, 401),
        ("POST", "/register", {"data": b"x" * (2 * MIB)}, 413),
    ],
    ids=["404", "401", "413"],
)
def test_kongs_own_answers_are_hardened_too(kong_gateway, method, path, kwargs, status):
    response = call(kong_gateway, method, path, **kwargs)

    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Server" not in response.headers
    assert UUID.fullmatch(response.headers["X-Request-ID"])


def kongs_headers(response: requests.Response) -> list[str]:
    """The headers KONG_HEADERS governs (kong/constants.lua HEADERS): Server, Via, X-Kong-*."""
    return [
        name for name in response.headers if name.lower() in ("server", "via") or name.lower().startswith("x-kong-")
    ]


@pytest.mark.parametrize(
    "method, path, status", [("GET", "/products", 200), ("GET", "/nowhere", 404), ("GET", "/orders", 401)]
)
def test_kong_names_itself_in_no_response_header(kong_gateway, method, path, status):
    # KONG_HEADERS=off (kong.env): no Server: kong/3.9.3, Via, X-Kong-Request-Id or latencies.
    response = call(kong_gateway, method, path)

    assert response.status_code == status
    assert kongs_headers(response) == []


def test_with_kongs_default_headers_it_would_name_itself(start_gateway, echo_upstreams):
    # What KONG_HEADERS=off prevents: Kong's default (kong_defaults.lua, headers) adds
    # Via and X-Kong-* to proxied answers (kong/runloop/handler.lua 1540-1578).
    gateway = start_gateway(echo_upstreams, KONG_HEADERS="server_tokens, latency_tokens, x-kong-request-id").url

    response = call(gateway, "GET", "/products")

    assert {"Via", "X-Kong-Request-Id", "X-Kong-Upstream-Latency"} <= set(kongs_headers(response))


# -- body size ------------------------------------------------------------------------


def test_a_body_of_exactly_the_limit_passes(kong_gateway):
    response = call(kong_gateway, "POST", "/register", data=b"x" * SIZE_LIMIT)

    assert len(response.json()["body"]) == SIZE_LIMIT


@pytest.mark.parametrize("size", [SIZE_LIMIT + 1, 2 * MIB])
def test_a_declared_body_over_the_limit_is_nginxs_413(kong_gateway, size):
    # client_max_body_size (kong.env) refuses it by its Content-Length, before Kong
    # runs (ngx_http_core_module.c 985-996): nginx's 413 in Kong's JSON.
    assert_kong_error(call(kong_gateway, "POST", "/register", data=b"x" * size), 413, PAYLOAD_TOO_LARGE)


def test_a_small_chunked_body_is_passed_on_whole(kong_gateway):
    response = call(kong_gateway, "POST", "/register", data=chunks(5000, 1000))

    assert response.json()["body"] == "x" * 5000


@pytest.mark.parametrize(
    "body, headers",
    [
        (lambda: chunks(SIZE_LIMIT, 100), {}),  # small chunks, many of them
        (lambda: chunks(SIZE_LIMIT, SIZE_LIMIT), {}),  # one chunk of the limit
        (lambda: chunks(SIZE_LIMIT, 1000), {f"X-Padding-{n}": "p" * 7000 for n in range(3)}),  # 21 kB of headers
    ],
    ids=["in-100-byte-chunks", "in-one-chunk", "after-21-kB-of-headers"],
)
def test_a_chunked_body_of_the_limit_is_passed_on(kong_gateway, body, headers):
    response = call(kong_gateway, "POST", "/register", data=body(), headers=headers)

    assert len(response.json()["body"]) == SIZE_LIMIT


@pytest.mark.parametrize(
    "body",
    [lambda: chunks(2 * MIB, 64 * 1024), lambda: chunks(SIZE_LIMIT + 1, 100)],
    ids=["2-MiB", "limit-plus-one-in-small-chunks"],
)
def test_a_chunked_body_over_the_limit_is_nginxs_413(kong_gateway, body):
    # nginx counts a chunked body as it reads it (ngx_http_request_body.c 1140-1154).
    assert_kong_error(call(kong_gateway, "POST", "/register", data=body()), 413, PAYLOAD_TOO_LARGE)


def test_a_huge_chunked_body_is_refused_long_before_it_is_all_sent(kong_gateway):
    # 12 MiB in 64 KiB chunks, looking for an answer after each: the 413 comes once
    # nginx has read 64 KiB of it, not after the whole body.
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    total = 12 * MIB
    sent = 0
    with socket.create_connection(address(kong_gateway), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /register HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\n")
        while sent < total and not select.select([sock], [], [], 0.01)[0]:
            sock.sendall(chunk)
            sent += 65536
        response = read_response(sock)

    assert_kong_error(response, 413, PAYLOAD_TOO_LARGE)
    assert sent <= 2 * MIB, f"sent {sent} bytes before the answer"


def test_the_size_limit_comes_before_routing_and_authentication(kong_gateway):
    # nginx checks Content-Length while it finds the location, before Kong's router
    # and plugins (ngx_http_core_module.c 985-996). The HAProxy stand-in answered
    # 404 and 401 here: it measured bodies after routing and jwt.
    oversized = b"x" * (2 * MIB)

    assert_kong_error(call(kong_gateway, "POST", "/nowhere", data=oversized), 413, PAYLOAD_TOO_LARGE)
    assert_kong_error(call(kong_gateway, "POST", "/orders", data=oversized), 413, PAYLOAD_TOO_LARGE)


# -- rate-limiting --------------------------------------------------------------------


@LIMITED
def test_requests_are_limited_per_client_address_and_minute(kong_gateway, new_client, path, limit):
    attacker, bystander = new_client(), new_client()
    whole_minute_ahead()

    allowed = [attacker.post(f"{kong_gateway}{path}", json={}, timeout=TIMEOUT) for _ in range(limit)]
    refused = attacker.post(f"{kong_gateway}{path}", json={}, timeout=TIMEOUT)
    other = bystander.post(f"{kong_gateway}{path}", json={}, timeout=TIMEOUT)

    assert [response.status_code for response in allowed] == [200] * limit
    assert [response.headers["RateLimit-Remaining"] for response in allowed] == [
        str(left) for left in range(limit - 1, -1, -1)
    ]
    assert_kong_error(refused, 429, RATE_LIMITED)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert other.status_code == 200


def test_sign_ups_and_logins_are_counted_apart(kong_gateway, new_client):
    client = new_client()
    whole_minute_ahead()
    for _ in range(LIMITS["/register"]):
        client.post(f"{kong_gateway}/register", json={}, timeout=TIMEOUT)

    assert client.post(f"{kong_gateway}/register", json={}, timeout=TIMEOUT).status_code == 429
    assert client.post(f"{kong_gateway}/token", json={}, timeout=TIMEOUT).status_code == 200


@LIMITED
def test_the_limit_headers_are_kongs(kong_gateway, new_client, path, limit):
    whole_minute_ahead()
    before = time.time()
    response = new_client().post(f"{kong_gateway}{path}", json={}, timeout=TIMEOUT)
    after = time.time()

    assert response.headers["X-RateLimit-Limit-Minute"] == response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining-Minute"] == response.headers["RateLimit-Remaining"] == str(limit - 1)
    # Seconds left in the current clock minute.
    assert 60 - int(after) % 60 <= int(response.headers["RateLimit-Reset"]) <= 60 - int(before) % 60


@LIMITED
def test_refused_requests_carry_the_id_and_nosniff(kong_gateway, new_client, path, limit):
    client = new_client()
    whole_minute_ahead()
    for _ in range(limit):
        client.post(f"{kong_gateway}{path}", json={}, timeout=TIMEOUT)

    refusals = [
        client.post(f"{kong_gateway}{path}", json={}, headers={"X-Request-ID": f"try-{n}"}, timeout=TIMEOUT)
        for n in range(3)
    ]

    assert [response.status_code for response in refusals] == [429] * 3
    assert [response.headers["X-Request-ID"] for response in refusals] == ["try-0", "try-1", "try-2"]
    assert all(response.headers["X-Content-Type-Options"] == "nosniff" for response in refusals)


@pytest.mark.parametrize("method, path, service", [route for route in PUBLIC if route[1] not in LIMITS])
def test_no_other_public_route_is_limited(kong_gateway, new_client, method, path, service):
    client = new_client()
    whole_minute_ahead()

    statuses = {
        client.request(method, f"{kong_gateway}{path}", timeout=TIMEOUT).status_code
        for _ in range(max(LIMITS.values()) + 5)
    }
    response = client.request(method, f"{kong_gateway}{path}", timeout=TIMEOUT)

    assert statuses == {200}
    assert "RateLimit-Limit" not in response.headers


# -- identity headers (the global post-function) --------------------------------------


@pytest.mark.parametrize("method, path, service", PUBLIC + [("GET", path, service) for path, service in OPENAPI])
def test_forged_identity_headers_never_reach_a_public_route(kong_gateway, method, path, service):
    response = call(kong_gateway, method, path, headers=IDENTITY, json={})

    assert response.json()["service"] == service
    for name in IDENTITY:
        assert upstream_headers(response, name) == [], name


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_on_protected_routes_the_identity_is_the_tokens(kong_gateway, make_token, method, path, service):
    response = call(kong_gateway, method, path, make_token(sub="42"), headers=IDENTITY)

    assert upstream_headers(response, "X-User-Id") == ["42"]
    assert upstream_headers(response, "X-Consumer-Username") == ["users-service"]
    assert upstream_headers(response, "X-Credential-Identifier") == [ISSUER]
    # The jwt plugin sets or clears each of these (kong/plugins/jwt/handler.lua 110-147).
    [consumer_id] = upstream_headers(response, "X-Consumer-ID")
    assert consumer_id != IDENTITY["X-Consumer-ID"]
    for name in ("X-Consumer-Custom-ID", "X-Anonymous-Consumer"):
        assert upstream_headers(response, name) == [], name


# -- when Kong took the request (the global post-function), for load shedding ----------


def stamp_of(response) -> int:
    [stamp] = upstream_headers(response, "X-Request-Start")
    assert stamp.isdigit(), stamp  # whole milliseconds since the epoch, as the services read it
    return int(stamp)


@pytest.mark.parametrize("method, path, service", PUBLIC + PROTECTED)
def test_every_request_reaches_its_service_stamped_with_when_kong_took_it(
    kong_gateway, make_token, method, path, service
):
    # A client's own stamp (1970: any service would shed that read) never gets through.
    before = time.time() * 1000
    response = call(kong_gateway, method, path, make_token(sub="42"), headers={"X-Request-Start": "1"}, json={})
    after = time.time() * 1000

    assert response.json()["service"] == service
    # Kong's clock is this host's (cached per turn of nginx's event loop): within a few ms.
    assert before - 50 <= stamp_of(response) <= after + 50


def test_every_copy_of_a_client_sent_stamp_is_replaced(kong_gateway):
    # set_header replaces them all, whatever their case (kong/pdk/service/request.lua).
    headers = b"Host: gateway\r\nX-Request-Start: 1\r\nx-request-start: 2\r\n"

    response = exchange(kong_gateway, get(b"/products", headers))

    assert stamp_of(response) > 1_700_000_000_000


# -- prometheus -----------------------------------------------------------------------


def test_metrics_are_served_on_the_status_listener(kong_instance):
    call(kong_instance.url, "GET", "/products")

    response = requests.get(f"{kong_instance.status_url}/metrics", timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert re.search(
        r'(?m)^kong_http_requests_total\{service="products",route="products-list",code="200",[^}]*\} [1-9]',
        response.text,
    )


def test_metrics_are_not_reachable_through_the_proxy(kong_instance):
    assert_kong_error(call(kong_instance.url, "GET", "/metrics"), 404, NO_ROUTE)
