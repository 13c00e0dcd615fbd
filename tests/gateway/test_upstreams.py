"""What Kong does when a service fails, or runs as several copies: kong.yml's
connect_timeout and retries, nginx's rule never to resend a POST that
reached a service, and the balancer over a service's copies (kong.config.with_upstreams).

One Kong serves the module: orders on an address that refuses connections, users
on a service that hangs up on every request, products on two echo servers.
"""

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from kong.config import load
from tests.gateway.conftest import KONG_YML, echo_server, refusing_address, running_kong, serving
from tests.gateway.helpers import assert_kong_error, call

pytestmark = pytest.mark.integration

# kong.yml's values (each service has the same): ms, and tries after the first.
_SERVICE = load(KONG_YML)["services"][0]
CONNECT_TIMEOUT = _SERVICE["connect_timeout"] / 1000
TRIES = 1 + _SERVICE["retries"]


class HangUpHandler(BaseHTTPRequestHandler):
    """Reads each request whole, notes it, and closes the connection without a word:
    a service that died while handling it."""

    protocol_version = "HTTP/1.1"
    arrivals: list[tuple[str, str]]

    def _hang_up(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.arrivals.append((self.command, self.path))
        self.close_connection = True

    do_GET = do_POST = _hang_up  # noqa: N815 - http.server's names

    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture(scope="module")
def failing(kong_config, echo_upstreams, tmp_path_factory):
    """(gateway URL, what reached the hanging-up users service)."""
    arrivals: list[tuple[str, str]] = []
    handler = type("HangUp", (HangUpHandler,), {"arrivals": arrivals})
    with (
        serving(handler, "hang-up") as users,
        echo_server("products-copy-1") as first,
        echo_server("products-copy-2") as second,
        refusing_address() as orders,
    ):
        upstreams = {"users": [users], "products": [first, second], "orders": [orders]}
        with running_kong(kong_config, upstreams, tmp_path_factory.mktemp("kong-failing")) as kong:
            yield kong.url, arrivals


def test_a_service_that_is_down_is_a_prompt_json_502(failing, make_token):
    gateway, _ = failing
    started = time.monotonic()

    response = call(gateway, "GET", "/orders", make_token())

    # Connection refused is an upstream error: nginx's 502 (ngx_http_upstream.c,
    # ngx_http_upstream_next) in Kong's JSON (kong/error_handlers.lua 25), at once,
    # retries included.
    assert time.monotonic() - started < CONNECT_TIMEOUT
    assert_kong_error(response, 502, "An invalid response was received from the upstream server")
    assert response.headers["X-Request-ID"]


def test_the_other_services_still_answer(failing):
    gateway, _ = failing

    assert call(gateway, "GET", "/products").status_code == 200


def test_a_post_that_reached_a_service_is_never_sent_again(failing):
    # The request was sent, and it is a POST: nginx doesn't pass it to the next try
    # (ngx_http_upstream.c 4404-4411: NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT, which
    # proxy_next_upstream doesn't list). A retried registration could register twice.
    gateway, arrivals = failing
    arrivals.clear()

    response = call(gateway, "POST", "/register", json={"email": "once@example.com"})

    assert_kong_error(response, 502, "An invalid response was received from the upstream server")
    assert arrivals == [("POST", "/register")]


def test_a_get_that_failed_is_tried_again(failing):
    # The counterpart, which shows the retries are there: a GET is tried 1 + retries times.
    gateway, arrivals = failing
    arrivals.clear()

    response = call(gateway, "GET", "/docs")

    assert_kong_error(response, 502, "An invalid response was received from the upstream server")
    assert arrivals == [("GET", "/docs")] * TRIES


def test_copies_of_a_service_share_its_requests(failing):
    # The native stack's --scale: several targets for one upstream, round robin.
    gateway, _ = failing

    answered = {call(gateway, "GET", "/products").json()["service"] for _ in range(6)}

    assert answered == {"products-copy-1", "products-copy-2"}


@contextmanager
def black_hole() -> Iterator[str]:
    """An address where connections are never accepted: a listening socket whose
    backlog is full, so the kernel drops new SYNs, as from a host that is gone."""
    with socket.socket() as listener, ExitStack() as stack:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        for _ in range(3):  # more than the backlog holds
            waiting = stack.enter_context(socket.socket())
            waiting.setblocking(False)
            waiting.connect_ex(listener.getsockname())
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_service_that_accepts_no_connection_is_a_json_504_after_each_try_timed_out(
    start_gateway, echo_upstreams, make_token
):
    # Each of the 1 + retries tries waits connect_timeout (the request was never
    # sent, so even a POST is tried again): 6 s in all, not Kong's default 5 x 60 s.
    with black_hole() as orders:
        gateway = start_gateway({**echo_upstreams, "orders": orders}).url
        started = time.monotonic()

        response = call(gateway, "POST", "/orders", make_token(), json={})
        waited = time.monotonic() - started

    assert_kong_error(response, 504, "The upstream server is timing out")
    assert TRIES * CONNECT_TIMEOUT - 0.5 <= waited <= TRIES * CONNECT_TIMEOUT + 2


def test_a_services_own_error_is_passed_on_as_it_is(kong_gateway):
    # Kong's error pages are for nginx's own errors (nginx_kong.lua 100-102); a
    # service's 503 reaches the client with the service's body.
    response = call(kong_gateway, "GET", "/products", headers={"X-Echo-Status": "503"})

    assert response.status_code == 503
    assert response.json()["service"] == "products"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    [sent] = [value for name, value in response.json()["headers"] if name.lower() == "x-request-id"]
    assert response.headers["X-Request-ID"] == sent
