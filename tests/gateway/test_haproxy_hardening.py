"""The HAProxy generated from kong.yml answers as Kong's cross-cutting plugins do:
correlation-id, request-size-limiting, rate-limiting, response-transformer,
prometheus, and the global post-function's identity headers.

As in test_haproxy_contract.py, a real HAProxy runs the generated config in front
of echo servers. The rate-limit tests each send from a loopback address of their
own (any 127.x.y.z is this host), so no test uses up another's limit.
"""

import itertools
import re
import socket
import time
import uuid

import pytest
import requests

from tests.gateway.conftest import ISSUER, free_port, running_haproxy
from tests.gateway.test_haproxy_contract import PROTECTED, PUBLIC, TIMEOUT, assert_json_error, call, upstream_headers
from tests.support import client_from

pytestmark = pytest.mark.integration

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
OPENAPI = [("/openapi/users.json", "users"), ("/openapi/products.json", "products"), ("/openapi/orders.json", "orders")]
IDENTITY = {
    "X-User-Id": "1",
    "X-Consumer-ID": "00000000-0000-0000-0000-000000000001",
    "X-Consumer-Custom-ID": "admin",
    "X-Consumer-Username": "users-service",
    "X-Credential-Identifier": ISSUER,
    "X-Anonymous-Consumer": "false",
}
MIB = 1024 * 1024
SIZE_LIMIT = 64 * 1024  # kong.yml's request-size-limiting
TOO_LARGE = {"message": "Request size limit exceeded"}
RATE_LIMITED = {"message": "API rate limit exceeded"}
LIMIT = 60  # kong.yml's rate-limiting on users-token
SOURCES = (f"127.0.{third}.{fourth}" for third, fourth in itertools.product(range(1, 255), range(2, 255)))


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


def raw_exchange(haproxy_gateway: str, request: bytes) -> bytes:
    """Send `request` as is; what HAProxy answered, up to the end of its headers."""
    host, port = haproxy_gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return answer


def chunks(total: int, size: int):
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


# -- correlation-id -------------------------------------------------------------------


def test_a_request_without_an_id_gets_a_uuid_upstream_and_back(haproxy_gateway):
    response = call(haproxy_gateway, "GET", "/products")

    [sent] = upstream_headers(response, "X-Request-ID")
    assert UUID.fullmatch(sent)
    assert response.headers["X-Request-ID"] == sent


def test_each_request_gets_an_id_of_its_own(haproxy_gateway):
    ids = {call(haproxy_gateway, "GET", "/products").headers["X-Request-ID"] for _ in range(3)}

    assert len(ids) == 3


@pytest.mark.parametrize("request_id", ["abc-123", "A.b_C-9", str(uuid.uuid4()), "x" * 128])
def test_a_plain_client_id_is_kept_upstream_and_echoed(haproxy_gateway, request_id):
    response = call(haproxy_gateway, "GET", "/products", headers={"X-Request-ID": request_id})

    assert upstream_headers(response, "X-Request-ID") == [request_id]
    assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["has space", "x" * 129, "", "a,b", "semi;colon", 'quote"d', "per%cent", "ünï"],
    ids=["space", "too-long", "empty", "comma", "semicolon", "quote", "percent", "non-ascii"],
)
def test_any_other_client_id_is_replaced_by_a_uuid(haproxy_gateway, request_id):
    # Kong would pass these on verbatim; the stand-in is stricter, since ids end up in logs.
    response = call(haproxy_gateway, "GET", "/products", headers={"X-Request-ID": request_id.encode()})

    [sent] = upstream_headers(response, "X-Request-ID")
    assert UUID.fullmatch(sent)
    assert response.headers["X-Request-ID"] == sent


def test_two_client_ids_are_replaced_by_one_uuid(haproxy_gateway):
    answer = raw_exchange(
        haproxy_gateway,
        b"GET /products HTTP/1.1\r\nHost: x\r\nX-Request-ID: one\r\nX-Request-ID: two\r\nConnection: close\r\n\r\n",
    )

    echoed = re.findall(rb"(?im)^x-request-id: *(\S+)", answer)
    assert len(echoed) == 1 and UUID.fullmatch(echoed[0].decode())


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/nowhere", 404), ("GET", "/orders", 401)],
    ids=["no-route", "no-token"],
)
def test_the_gateways_own_answers_echo_the_id_too(haproxy_gateway, method, path, status):
    response = call(haproxy_gateway, method, path, headers={"X-Request-ID": "trace-me"})

    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "trace-me"


# -- response-transformer -------------------------------------------------------------


def test_proxied_responses_lose_banners_and_gain_nosniff(haproxy_gateway):
    response = call(haproxy_gateway, "GET", "/products", headers={"X-Reply-X-Powered-By": "Express 4.18"})

    assert response.status_code == 200
    assert "Server" not in response.headers  # the echo server sends BaseHTTP/… Python/…
    assert "X-Powered-By" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_services_own_nosniff_header_is_left_alone(haproxy_gateway):
    # Kong's "add" adds a header only where there is none.
    response = call(
        haproxy_gateway, "GET", "/products", headers={"X-Reply-X-Content-Type-Options": "nosniff-by-service"}
    )

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
def test_the_gateways_own_answers_are_hardened_too(haproxy_gateway, method, path, kwargs, status):
    response = call(haproxy_gateway, method, path, **kwargs)

    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Server" not in response.headers
    assert UUID.fullmatch(response.headers["X-Request-ID"])


# -- request-size-limiting ------------------------------------------------------------


def test_a_body_of_exactly_the_limit_passes(haproxy_gateway):
    response = call(haproxy_gateway, "POST", "/register", data=b"x" * SIZE_LIMIT)

    assert len(response.json()["body"]) == SIZE_LIMIT


@pytest.mark.parametrize("size", [SIZE_LIMIT + 1, 2 * MIB])
def test_a_declared_body_over_the_limit_is_413(haproxy_gateway, size):
    assert_json_error(call(haproxy_gateway, "POST", "/register", data=b"x" * size), 413, TOO_LARGE)


def test_a_client_waiting_for_100_continue_gets_417_without_sending_the_body(haproxy_gateway):
    answer = raw_exchange(
        haproxy_gateway,
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2097152\r\nExpect: 100-continue\r\n\r\n",
    )

    assert answer.startswith(b"HTTP/1.1 417 ")


def test_a_small_chunked_body_is_measured_and_passed_on_intact(haproxy_gateway):
    response = call(haproxy_gateway, "POST", "/register", data=chunks(5000, 1000))

    assert response.json()["body"] == "x" * 5000
    assert upstream_headers(response, "Transfer-Encoding") == ["chunked"]


@pytest.mark.parametrize(
    "body, headers",
    [
        (lambda: chunks(SIZE_LIMIT, 100), {}),  # small chunks, many of them
        (lambda: chunks(SIZE_LIMIT, SIZE_LIMIT), {}),  # one chunk of the limit
        (lambda: chunks(SIZE_LIMIT, 1000), {f"X-Padding-{n}": "p" * 8000 for n in range(3)}),  # 24 kB of headers first
    ],
    ids=["in-100-byte-chunks", "in-one-chunk", "after-24-kB-of-headers"],
)
def test_a_chunked_body_of_the_limit_is_measured_whole_and_passed_on(haproxy_gateway, body, headers):
    # Kong reads a chunked body whole and measures it; HAProxy's buffer holds the
    # limit beside the largest headers allowed, so it measures the same.
    response = call(haproxy_gateway, "POST", "/register", data=body(), headers=headers)

    assert len(response.json()["body"]) == SIZE_LIMIT


@pytest.mark.parametrize(
    "body, headers",
    [
        (lambda: chunks(2 * MIB, 64 * 1024), {}),
        (lambda: chunks(SIZE_LIMIT + 1, 100), {}),
        (lambda: chunks(SIZE_LIMIT + 1, 1000), {f"X-Padding-{n}": "p" * 8000 for n in range(3)}),
    ],
    ids=["2-MiB", "limit-plus-one-in-small-chunks", "limit-plus-one-after-24-kB-of-headers"],
)
def test_a_chunked_body_over_the_limit_is_413(haproxy_gateway, body, headers):
    assert_json_error(call(haproxy_gateway, "POST", "/register", data=body(), headers=headers), 413, TOO_LARGE)


def test_a_lower_limit_is_measured_on_chunked_bodies_too(start_gateway, make_config, echo_upstreams):
    config = make_config()
    plugin = next(plugin for plugin in config["plugins"] if plugin["name"] == "request-size-limiting")
    plugin["config"].update(allowed_payload_size=4, size_unit="kilobytes")
    haproxy_gateway = start_gateway(echo_upstreams, config)

    assert call(haproxy_gateway, "POST", "/register", data=b"x" * 4096).status_code == 200
    assert_json_error(call(haproxy_gateway, "POST", "/register", data=b"x" * 4097), 413, TOO_LARGE)
    assert call(haproxy_gateway, "POST", "/register", data=chunks(4096, 1000)).status_code == 200
    assert_json_error(call(haproxy_gateway, "POST", "/register", data=chunks(4097, 1000)), 413, TOO_LARGE)
    assert_json_error(call(haproxy_gateway, "POST", "/register", data=chunks(5000, 5000)), 413, TOO_LARGE)


def test_the_size_limit_comes_after_routing_and_authentication(haproxy_gateway):
    # As in Kong: the router answers first, then jwt (priority 1450), then the size limit (951).
    oversized = b"x" * (2 * MIB)

    assert call(haproxy_gateway, "POST", "/nowhere", data=oversized).status_code == 404
    assert_json_error(call(haproxy_gateway, "POST", "/orders", data=oversized), 401, {"message": "Unauthorized"})


def test_an_http2_client_is_refused(haproxy_gateway):
    # Kong's proxy port speaks HTTP/1.1 only; so does this one, which is also what
    # makes every request body either declared or chunked.
    answer = raw_exchange(haproxy_gateway, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))

    assert answer.startswith(b"HTTP/1.1 400 ")


def test_require_content_length_refuses_bodies_of_unknown_length(start_gateway, make_config, echo_upstreams):
    config = make_config()
    plugin = next(plugin for plugin in config["plugins"] if plugin["name"] == "request-size-limiting")
    plugin["config"]["require_content_length"] = True
    haproxy_gateway = start_gateway(echo_upstreams, config)

    # Kong checks only that there is a Content-Length or a chunked body, even on a GET.
    no_length = raw_exchange(haproxy_gateway, b"GET /products HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    declared = call(haproxy_gateway, "POST", "/register", json={})
    chunked = call(haproxy_gateway, "POST", "/register", data=chunks(100, 10))

    assert no_length.startswith(b"HTTP/1.1 411 ")
    assert declared.status_code == 200
    assert chunked.status_code == 200


# -- rate-limiting --------------------------------------------------------------------


def test_logins_are_limited_per_client_address_and_minute(haproxy_gateway, new_client):
    attacker, bystander = new_client(), new_client()
    whole_minute_ahead()

    allowed = [attacker.post(f"{haproxy_gateway}/token", json={}, timeout=TIMEOUT) for _ in range(LIMIT)]
    refused = attacker.post(f"{haproxy_gateway}/token", json={}, timeout=TIMEOUT)
    other = bystander.post(f"{haproxy_gateway}/token", json={}, timeout=TIMEOUT)

    assert [response.status_code for response in allowed] == [200] * LIMIT
    assert [response.headers["RateLimit-Remaining"] for response in allowed] == [
        str(left) for left in range(LIMIT - 1, -1, -1)
    ]
    assert_json_error(refused, 429, RATE_LIMITED)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert other.status_code == 200


def test_the_limit_headers_are_kongs(haproxy_gateway, new_client):
    whole_minute_ahead()
    before = time.time()
    response = new_client().post(f"{haproxy_gateway}/token", json={}, timeout=TIMEOUT)
    after = time.time()

    assert response.headers["X-RateLimit-Limit-Minute"] == response.headers["RateLimit-Limit"] == str(LIMIT)
    assert response.headers["X-RateLimit-Remaining-Minute"] == response.headers["RateLimit-Remaining"] == str(LIMIT - 1)
    # Seconds left in the current clock minute.
    assert 60 - int(after) % 60 <= int(response.headers["RateLimit-Reset"]) <= 60 - int(before) % 60


def test_refused_requests_are_not_counted_and_the_gateways_answers_carry_the_id(haproxy_gateway, new_client):
    client = new_client()
    whole_minute_ahead()
    for _ in range(LIMIT):
        client.post(f"{haproxy_gateway}/token", json={}, timeout=TIMEOUT)

    refusals = [
        client.post(f"{haproxy_gateway}/token", json={}, headers={"X-Request-ID": f"try-{n}"}, timeout=TIMEOUT)
        for n in range(3)
    ]

    assert [response.status_code for response in refusals] == [429] * 3
    assert [response.headers["X-Request-ID"] for response in refusals] == ["try-0", "try-1", "try-2"]
    assert all(response.headers["X-Content-Type-Options"] == "nosniff" for response in refusals)


def test_only_the_login_route_is_limited(haproxy_gateway, new_client):
    client = new_client()
    whole_minute_ahead()

    statuses = {
        client.post(f"{haproxy_gateway}/register", json={}, timeout=TIMEOUT).status_code for _ in range(LIMIT + 5)
    }
    response = client.post(f"{haproxy_gateway}/register", json={}, timeout=TIMEOUT)

    assert statuses == {200}
    assert "RateLimit-Limit" not in response.headers


def test_a_service_level_limit_is_shared_by_its_routes_and_a_route_level_one_replaces_it(
    start_gateway, make_config, echo_upstreams, make_token
):
    config = make_config()
    users = next(service for service in config["services"] if service["name"] == "users")
    users["plugins"] = [{"name": "rate-limiting", "config": {"minute": 2, "limit_by": "ip", "policy": "local"}}]
    haproxy_gateway = start_gateway(echo_upstreams, config)
    whole_minute_ahead()

    first = call(haproxy_gateway, "POST", "/register", json={})
    second = call(haproxy_gateway, "GET", "/users/me", make_token())
    third = call(haproxy_gateway, "POST", "/register", json={})
    login = call(haproxy_gateway, "POST", "/token", json={})

    assert (first.status_code, second.status_code) == (200, 200)
    assert_json_error(third, 429, RATE_LIMITED)
    assert login.headers["RateLimit-Limit"] == str(LIMIT)  # users-token's own config


def test_hidden_limit_headers_still_say_when_to_retry(start_gateway, make_config, echo_upstreams):
    config = make_config()
    users_token = next(node for svc in config["services"] for node in svc["routes"] if node["name"] == "users-token")
    users_token["plugins"][0]["config"].update(minute=1, hide_client_headers=True)
    haproxy_gateway = start_gateway(echo_upstreams, config)
    whole_minute_ahead()

    allowed = call(haproxy_gateway, "POST", "/token", json={})
    refused = call(haproxy_gateway, "POST", "/token", json={})

    assert allowed.status_code == 200
    assert_json_error(refused, 429, RATE_LIMITED)
    assert "Retry-After" in refused.headers
    assert not [name for name in {**allowed.headers, **refused.headers} if "ratelimit" in name.lower()]


# -- identity headers (the global post-function) --------------------------------------


@pytest.mark.parametrize("method, path, service", PUBLIC + [("GET", path, service) for path, service in OPENAPI])
def test_forged_identity_headers_never_reach_a_public_route(haproxy_gateway, method, path, service):
    response = call(haproxy_gateway, method, path, headers=IDENTITY, json={})

    assert response.json()["service"] == service
    for name in IDENTITY:
        assert upstream_headers(response, name) == [], name


@pytest.mark.parametrize("method, path, service", PROTECTED)
def test_on_protected_routes_the_identity_is_the_tokens(haproxy_gateway, make_token, method, path, service):
    response = call(haproxy_gateway, method, path, make_token(sub="42"), headers=IDENTITY)

    assert upstream_headers(response, "X-User-Id") == ["42"]
    assert upstream_headers(response, "X-Consumer-Username") == ["users-service"]
    assert upstream_headers(response, "X-Credential-Identifier") == [ISSUER]
    for name in ("X-Consumer-ID", "X-Consumer-Custom-ID", "X-Anonymous-Consumer"):
        assert upstream_headers(response, name) == [], name


# -- the OpenAPI routes ---------------------------------------------------------------


@pytest.mark.parametrize("path, service", OPENAPI)
def test_each_services_openapi_document_is_public(haproxy_gateway, path, service):
    response = call(haproxy_gateway, "GET", path)

    assert response.json()["service"] == service
    assert response.json()["path"] == path


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
def test_nothing_else_under_openapi_is_routed(haproxy_gateway, method, path):
    assert_json_error(call(haproxy_gateway, method, path), 404, {"message": "no Route matched with those values"})


# -- prometheus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def metrics_gateway(haproxy_binary, kong_config, echo_upstreams, tmp_path_factory):
    """(proxy URL, metrics URL) of an HAProxy of its own, on known ports."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("haproxy-metrics")
    with running_haproxy(haproxy_binary, kong_config, echo_upstreams, workdir, metrics_port=port) as url:
        yield url, f"http://127.0.0.1:{port}"


def test_metrics_are_served_on_their_own_loopback_port(metrics_gateway):
    proxy, metrics = metrics_gateway
    call(proxy, "GET", "/products")

    response = requests.get(f"{metrics}/metrics", timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert re.search(r'(?m)^haproxy_frontend_http_requests_total\{proxy="gateway"\} [1-9]', response.text)
    assert 'haproxy_backend_http_responses_total{proxy="products",code="2xx"}' in response.text


def test_metrics_are_not_reachable_through_the_proxy(metrics_gateway):
    proxy, metrics = metrics_gateway

    assert_json_error(call(proxy, "GET", "/metrics"), 404, {"message": "no Route matched with those values"})
    assert requests.get(f"{metrics}/stats", timeout=TIMEOUT).status_code == 404
