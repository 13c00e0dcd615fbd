"""The gateway's cross-cutting protections, through port 8000 (Kong): request ids,
response headers, the body size limit, the identity headers, the OpenAPI routes
and the rate limits on logins and sign-ups.

What reaches a service can't be seen from here; tests/gateway checks that
against echo servers. The rate-limit tests come last on purpose: under Docker,
Kong sees every client on this host as one address, which they leave limited
until the clock minute is over (their fixture waits for that before it ends).
"""

import ipaddress
import os
import random
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import GATEWAY_URL, PASSWORD
from tests.e2e.errors import assert_error
from tests.support import client_from

pytestmark = pytest.mark.e2e

DOCKER = os.environ.get("SHOP_STACK") == "docker"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MIB = 1024 * 1024
SIZE_LIMIT = 64 * 1024  # nginx's client_max_body_size (kong/kong.env)
# Kong's error handler's message for nginx's 413 (kong/error_handlers.lua).
TOO_LARGE = "Payload too large"
# kong.yml's rate-limiting: requests a minute per client address.
LIMITS = {"/token": 60, "/register": 20}
FORGED_IDENTITY = {
    "X-Consumer-ID": "00000000-0000-0000-0000-000000000001",
    "X-Consumer-Custom-ID": "admin",
    "X-Consumer-Username": "users-service",
    "X-Credential-Identifier": "shop-users",
    "X-Anonymous-Consumer": "false",
}


def assert_hardened(response: requests.Response) -> None:
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert not re.search(r"[0-9/]", response.headers.get("Server", "")), response.headers["Server"]
    assert "X-Powered-By" not in response.headers


def chunks(total: int, size: int):
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


# -- request ids ----------------------------------------------------------------------


def test_a_request_without_an_id_gets_a_uuid(gateway):
    response = gateway.get("/products")

    assert UUID.fullmatch(response.headers["X-Request-ID"])


def test_a_clients_request_id_is_echoed_unchanged(gateway):
    request_id = f"e2e-{uuid.uuid4().hex}"

    response = gateway.get("/products", headers={"X-Request-ID": request_id})

    assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize("request_id", ["has some spaces", "x" * 200], ids=["spaces", "200-chars"])
def test_any_client_request_id_is_kept(gateway, request_id):
    response = gateway.get("/products", headers={"X-Request-ID": request_id})

    # Kong's correlation-id keeps any non-empty client value
    # (kong/plugins/correlation-id/handler.lua); the services replace it before
    # logging (common/context.py), so it can't forge their log lines.
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == request_id


# -- response headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/products", 200), ("GET", "/nowhere", 404), ("GET", "/orders", 401)],
    ids=["proxied", "no-route", "no-token"],
)
def test_responses_carry_no_banners_and_nosniff(gateway, method, path, status):
    response = gateway.request(method, path)

    assert response.status_code == status
    assert_hardened(response)
    assert UUID.fullmatch(response.headers["X-Request-ID"])


# -- the body size limit --------------------------------------------------------------


@pytest.mark.parametrize("size", [SIZE_LIMIT + 1, 2 * MIB])
def test_a_body_over_64_kib_is_413(gateway, size):
    response = gateway.post("/register", data=b"x" * size, headers={"Content-Type": "application/json"})

    assert_error(response, 413, TOO_LARGE)
    assert_hardened(response)


@pytest.mark.parametrize("size", [SIZE_LIMIT + 1, 2 * MIB])
def test_a_chunked_body_over_64_kib_is_413(gateway, size):
    response = gateway.post(
        "/register", data=lambda: chunks(size, 16 * 1024), headers={"Content-Type": "application/json"}
    )

    assert_error(response, 413, TOO_LARGE)


def test_a_chunked_body_of_64_kib_is_read_by_the_service(gateway):
    # Within nginx's limit, read whole and passed on: the service finds it isn't JSON.
    response = gateway.post(
        "/register", data=lambda: chunks(SIZE_LIMIT, 1000), headers={"Content-Type": "application/json"}
    )

    assert_error(response, 400, "The request body is not valid JSON.")


# -- identity headers -----------------------------------------------------------------


def test_forged_consumer_headers_on_public_routes_change_nothing(gateway):
    # tests/gateway shows they never reach the service; here: the request works as ever.
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"

    registered = gateway.post("/register", json={"email": email, "password": PASSWORD}, headers=FORGED_IDENTITY)
    listed = gateway.get("/products", headers=FORGED_IDENTITY)

    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == email
    assert listed.status_code == 200


# -- OpenAPI documents ----------------------------------------------------------------


@pytest.mark.parametrize("service", ["users", "products", "orders"])
def test_each_services_openapi_document_is_public(gateway, service):
    response = gateway.get(f"/openapi/{service}.json")

    assert response.status_code == 200, response.text
    assert {"openapi", "paths"} <= response.json().keys()


# -- the rate limits on logins and sign-ups (last: see the module's docstring) ---------


def loopback_addresses(count: int) -> list[str]:
    """Distinct addresses no other run of these tests is likely to have used this minute."""
    return [f"127.0.0.{last}" for last in random.sample(range(50, 251), count)]


@pytest.fixture(scope="module")
def floods(gateway):
    """From one address, within one clock minute (Kong counts per clock minute):
    61 logins with a wrong password, then 21 sign-ups. Yields (the address, the
    minute, {path: its responses}). Each claims another X-Forwarded-For: Kong
    trusts no proxy in front of it (trusted_ips is empty), so its client address
    is the connection's, and a forged header can't spread them over many addresses.

    Under Docker that address is every client on this host, so afterwards this
    waits for the next minute: later tests' logins and sign-ups must not be refused."""
    if not _gateway_on_loopback():
        pytest.skip(f"sending from other loopback addresses needs the gateway on loopback, not {GATEWAY_URL}")
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    assert gateway.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201
    wrong = {"email": email, "password": "not-the-password-123"}

    def sign_up():
        return {"email": f"e2e-flood-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}

    for address in loopback_addresses(2):  # a second try if a new minute began halfway
        if 60 - time.time() % 60 < 20:  # 61 logins and 21 sign-ups take a few seconds
            time.sleep(60 - time.time() % 60)
        minute = int(time.time() // 60)
        with client_from(address) as client:
            forged = [{"X-Forwarded-For": f"10.0.0.{n}"} for n in range(max(LIMITS.values()) + 1)]
            responses = {
                "/token": [
                    client.post(f"{GATEWAY_URL}/token", json=wrong, headers=forged[n], timeout=10)
                    for n in range(LIMITS["/token"] + 1)
                ],
                "/register": [
                    client.post(f"{GATEWAY_URL}/register", json=sign_up(), headers=forged[n], timeout=10)
                    for n in range(LIMITS["/register"] + 1)
                ],
            }
        if int(time.time() // 60) == minute:
            break
    else:
        pytest.fail("couldn't send the floods within one clock minute")
    yield address, minute, responses
    if DOCKER and int(time.time() // 60) == minute:
        time.sleep(60 - time.time() % 60 + 1)


def _gateway_on_loopback() -> bool:
    host = urlsplit(GATEWAY_URL).hostname
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


@pytest.mark.parametrize("path, allowed", [("/token", 401), ("/register", 201)])
def test_zz_requests_from_one_address_are_limited_per_minute(floods, path, allowed):
    _, _, responses = floods
    statuses = [response.status_code for response in responses[path]]

    if DOCKER:
        # Kong sees this host's clients as one address, whose count this minute's
        # other requests (other tests') share: the limit may come sooner.
        first = statuses.index(429)
        assert set(statuses[:first]) <= {allowed} and set(statuses[first:]) == {429}
    else:
        assert statuses == [allowed] * LIMITS[path] + [429]
    refused = responses[path][-1]
    assert_error(refused, 429, "API rate limit exceeded")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert_hardened(refused)


@pytest.mark.skipif(
    DOCKER,
    reason="under Docker, Kong sees every client on this host as the bridge's one address: "
    "another source address is the same client there",
)
@pytest.mark.parametrize("path", ["/token", "/register"])
def test_zz_requests_from_another_address_are_not_limited(floods, path):
    attacker, minute, _ = floods
    bystander = next(address for address in loopback_addresses(2) if address != attacker)
    body = {"email": f"e2e-{uuid.uuid4().hex[:12]}@example.com", "password": "not-the-password-123"}

    with client_from(bystander) as client:
        other = client.post(f"{GATEWAY_URL}{path}", json=body, timeout=10)
    with client_from(attacker) as client:
        again = client.post(f"{GATEWAY_URL}{path}", json=body, timeout=10)

    assert other.status_code == {"/token": 401, "/register": 201}[path]
    if int(time.time() // 60) == minute:  # else the attacker's count has begun afresh
        assert again.status_code == 429
