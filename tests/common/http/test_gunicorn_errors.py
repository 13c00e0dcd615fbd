"""What a service under the project's Gunicorn config answers to requests it
can't read: JSON in the one shape with an X-Request-ID, never Gunicorn's HTML.

A real Gunicorn (common/http/gunicorn_conf.py, its worker class included) serves the
real products app on a port of its own; the requests go over bare sockets, since
a client library would not send them.
"""

import os
import re
import subprocess
import sys
import uuid

import pytest
import requests

from tests.gateway.conftest import free_port
from tests.rawhttp import exchange
from tests.support import eventually

pytestmark = pytest.mark.integration

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")  # what common/context.py accepts


@pytest.fixture(scope="module")
def service(products_app, tmp_path_factory):
    """The URL of products under Gunicorn with the project's settings."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = {
        **os.environ,
        "SERVICE": "products",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "DATABASE_URL": products_app.config["SQLALCHEMY_DATABASE_URI"],
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:common.http.gunicorn_conf", "products:create_app()"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answering():
        assert process.poll() is None, log.read_text()
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker booted yet
            return False

    try:
        eventually(answering, deadline=20)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def get(extra_headers: bytes = b"", request_id: bytes = b"") -> bytes:
    rid = b"X-Request-ID: " + request_id + b"\r\n" if request_id else b""
    return b"GET /products HTTP/1.1\r\nHost: products\r\n" + rid + extra_headers + b"Connection: close\r\n\r\n"


def assert_json_error(response, status: int, message: str) -> None:
    assert response.status == status, response
    assert response.header("Content-Type") == "application/json"
    assert response.json() == {"message": message}
    assert REQUEST_ID.fullmatch(response.header("X-Request-ID") or "")


@pytest.mark.parametrize(
    "headers, status, message",
    [
        (b"X-Note: a\x01b\r\n", 400, "The request could not be read."),  # a control character (Kong passes it)
        (b"X-Note: a\x7fb\r\n", 400, "The request could not be read."),
        (b"Content-Type: a\r\nContent-Type: b\r\n", 400, "The request could not be read."),  # a singleton field twice
        (b"Expect: something-else\r\n", 417, "The expectation in the Expect header can't be met."),
        (b"X-Big: " + b"b" * 20_000 + b"\r\n", 431, "A request header is too large."),
        (b"Transfer-Encoding: gzip, chunked\r\nContent-Length: 1\r\n", 400, "The request could not be read."),
    ],
    ids=["control-character", "del", "two-content-types", "unknown-expectation", "20-kB-header", "te-and-cl"],
)
def test_gunicorns_own_refusals_are_json(service, headers, status, message):
    assert_json_error(exchange(service, get(headers)), status, message)


def test_gunicorns_refusal_carries_the_gateways_request_id_when_it_got_that_far(service):
    request_id = f"edge-{uuid.uuid4().hex}".encode()

    # Framing Gunicorn refuses once it has read every header (a gateway in front
    # would answer with the id itself; Gunicorn's answer already has it).
    response = exchange(service, get(b"Transfer-Encoding: chunked\r\nContent-Length: 1\r\n", request_id))

    assert response.header("X-Request-ID") == request_id.decode()


def test_a_header_line_the_gateways_allow_is_read(service):
    # Kong takes header lines up to 8 KiB (nginx's buffers); Gunicorn's default would refuse
    # anything over 8,190 bytes, so the limit is raised above that.
    response = exchange(service, get(b"X-Big: " + b"b" * 8_180 + b"\r\n"))

    assert response.status == 200, response


def test_a_client_that_says_it_came_over_tls_is_not_a_contradiction(service):
    # The gateway always sends X-Forwarded-Proto; X-Forwarded-Ssl from a client reaches
    # the service through Kong. Only X-Forwarded-Proto may decide the scheme.
    headers = b"X-Forwarded-Proto: http\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Protocol: ssl\r\n"

    assert exchange(service, get(headers)).status == 200


@pytest.mark.parametrize(
    "trailer",
    [b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"Bad Name: x\r\n"],
    ids=["content-length", "transfer-encoding", "bad-name"],
)
def test_a_body_whose_trailers_gunicorn_refuses_is_a_json_400(service, trailer):
    # Kong passes a chunked body on with a Content-Length and without its trailers
    # (tests/gateway/test_edge.py); sent to the service directly, Gunicorn raises
    # while the app reads them.
    body = b'{"name":"Pen","price":1,"quantity":1}'
    request = (
        b"POST /products HTTP/1.1\r\nHost: products\r\nX-User-Id: 7\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n%s\r\n"
        % (len(body), body, trailer)
    )

    before = requests.get(f"{service}/products", timeout=5).json()["total"]

    response = exchange(service, request)

    assert response.status == 400, response
    assert response.json() == {"message": "The request body could not be read."}
    assert requests.get(f"{service}/products", timeout=5).json()["total"] == before  # nothing half-written


def test_a_malformed_chunk_is_a_json_400(service):
    request = (
        b"POST /products HTTP/1.1\r\nHost: products\r\nX-User-Id: 7\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{"a":\r\nzz\r\n\r\n'
    )

    response = exchange(service, request)

    assert response.status == 400, response
    assert response.json() == {"message": "The request body could not be read."}


def test_an_identity_header_spelt_with_underscores_is_never_read_as_one(service):
    # Kong's nginx drops it (kong/kong.env), and the service must not depend on
    # that: Gunicorn drops header names with underscores (header_map = "drop" in
    # common/http/gunicorn_conf.py) instead of mapping X_User_Id to X-User-Id.
    body = b'{"name": "Spoofed", "price": 1, "quantity": 1}'
    request = (
        b"POST /products HTTP/1.1\r\nHost: products\r\nX_User_Id: 7\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )

    response = exchange(service, request)

    assert response.status == 401, response
    assert response.json() == {"message": "Authentication required."}
