"""Fixtures for the gateway tests: kong.yml as loaded, tokens, echo upstreams and a
real HAProxy running the config generated from kong.yml."""

import copy
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path

import jwt
import pytest
import requests

from kong.config import load, render, write_private_file
from kong.haproxy import generate_haproxy_config

ROOT = Path(__file__).resolve().parents[2]
KONG_YML = ROOT / "kong.yml"
ISSUER = "shop-users"  # the jwt_secrets key in kong.yml
# Quotes, $, commas, parentheses, # and non-ASCII: whatever HAProxy's config syntax
# treats specially must still reach jwt_verify intact. Long enough for HS512.
TEST_SECRET = "gateway 'test' \"secret\" $HOME ${X}, (parens) #hash \\ ünïcödé — 0123456789abcdef0123456789"
START_DEADLINE = 10.0
STOP_DEADLINE = 5.0


@pytest.fixture(scope="session")
def haproxy_binary() -> str:
    path = shutil.which("haproxy")
    if path is None:
        pytest.fail("haproxy is not installed: scripts/bootstrap installs it")
    return path


@pytest.fixture(scope="session")
def kong_yml() -> Path:
    return KONG_YML


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    """What the tests set JWT_SECRET to."""
    return TEST_SECRET


@pytest.fixture(scope="session")
def kong_config() -> dict:
    """The repo's kong.yml, rendered with the test secret."""
    return render(load(KONG_YML), {"JWT_SECRET": TEST_SECRET})


@pytest.fixture
def make_config(kong_config):
    """Factory: a private deep copy of the rendered kong.yml, for a test to change one thing in."""

    def make() -> dict:
        return copy.deepcopy(kong_config)

    return make


@pytest.fixture
def make_token():
    """Factory: a token as the users service issues it; keyword arguments override
    claims (None drops one), `secret`/`algorithm` change how it is signed."""

    def make(*, secret: str = TEST_SECRET, algorithm: str = "HS256", **claims) -> str:
        payload = {"iss": ISSUER, "sub": "42", "exp": int(time.time()) + 300, **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, secret, algorithm=algorithm)

    return make


# -- upstreams ------------------------------------------------------------------------


REPLY_HEADER = "X-Reply-"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON, naming its service.

    A request header X-Reply-<Name>: <value> makes it answer with <Name>: <value>
    too, so a test can see what the gateway does to a service's headers. (It
    always sends a Server header, as BaseHTTPRequestHandler does.)"""

    protocol_version = "HTTP/1.1"  # keep-alive, as HAProxy expects of a backend
    service = "?"

    def _echo(self) -> None:
        body = self._body().decode("utf-8", "replace")
        reply = json.dumps(
            {
                "service": self.service,
                "method": self.command,
                "path": self.path,
                "headers": list(self.headers.items()),  # a list: repeated headers must show
                "body": body,
            }
        ).encode()
        self.send_response(200)
        for name, value in self.headers.items():
            if name.lower().startswith(REPLY_HEADER.lower()):
                self.send_header(name[len(REPLY_HEADER) :], value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after the chunk
        while self.rfile.readline() not in (b"\r\n", b""):  # trailers, then the empty line
            pass
        return b"".join(chunks)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _echo  # noqa: N815 - http.server's names

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass  # HAProxy's health checks would fill the test output


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # HAProxy's health checks hang up with a reset once answered: not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def echo_server(service: str) -> Iterator[str]:
    with serving(type(f"{service}EchoHandler", (EchoHandler,), {"service": service}), f"echo-{service}") as address:
        yield address


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], name: str) -> Iterator[str]:
    """An HTTP upstream answering with `handler` on a free loopback port: its "host:port"."""
    server = EchoServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def echo_upstreams() -> Iterator[dict[str, str]]:
    """One echo server per kong.yml service: service name -> "host:port"."""
    with echo_server("users") as users, echo_server("products") as products, echo_server("orders") as orders:
        yield {"users": users, "products": products, "orders": orders}


@pytest.fixture
def dead_upstream() -> Iterator[str]:
    """An address that refuses connections: bound, so nobody else takes it, but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# -- HAProxy --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_haproxy(
    haproxy: str, config: dict, upstreams: dict[str, str], workdir: Path, metrics_port: int | None = None
) -> Iterator[str]:
    """Run HAProxy in the foreground with the config generated from `config`; yield its URL.

    Its metrics listener (if kong.yml has the prometheus plugin) is on
    `metrics_port`, by default on some free port: never on the one a running
    stack uses."""
    port = free_port()
    metrics_bind = f"127.0.0.1:{metrics_port or free_port()}"
    config_file = workdir / "haproxy.cfg"
    text = generate_haproxy_config(config, upstreams, bind=f"127.0.0.1:{port}", metrics_bind=metrics_bind)
    write_private_file(config_file, text)
    log_file = workdir / "haproxy.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen([haproxy, "-db", "-f", str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_answering(url, process, log_file)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:  # ignored SIGTERM: don't leave it behind
            process.kill()
            process.wait()


def _wait_until_answering(url: str, process: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"haproxy exited with {process.returncode}:\n{log_file.read_text()}")
        try:
            requests.get(f"{url}/gateway-test-readiness", timeout=1)
            return  # any HTTP answer (a 404 here) means it is serving
        except requests.ConnectionError:  # not listening yet
            time.sleep(0.05)
    pytest.fail(f"haproxy didn't answer within {START_DEADLINE}s:\n{log_file.read_text()}")


@pytest.fixture(scope="module")
def haproxy_gateway(haproxy_binary, kong_config, echo_upstreams, tmp_path_factory) -> Iterator[str]:
    """The URL of HAProxy running kong.yml, every service on an echo server."""
    with running_haproxy(haproxy_binary, kong_config, echo_upstreams, tmp_path_factory.mktemp("haproxy")) as url:
        yield url


@pytest.fixture
def start_gateway(haproxy_binary, kong_config, tmp_path) -> Iterator:
    """Factory: HAProxy running kong.yml (or the given variant of it) with the given
    upstreams; stopped after the test."""
    numbers = count(1)
    with ExitStack() as running:

        def start(upstreams: dict[str, str], config: dict | None = None) -> str:
            workdir = tmp_path / f"haproxy-{next(numbers)}"
            workdir.mkdir()
            config = kong_config if config is None else config
            return running.enter_context(running_haproxy(haproxy_binary, config, upstreams, workdir))

        yield start
