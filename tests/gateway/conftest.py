"""Fixtures for the gateway tests: kong.yml as loaded, tokens, echo upstreams and
real Kong 3.9.3 running kong.yml with kong/kong.env's settings in front of them.

Kong starts as the native stack starts it (scripts/native_kong.py): `kong prepare`
writes nginx's config into a prefix, then OpenResty's nginx runs it in the
foreground. Each instance listens on free loopback ports of its own, never on a
running stack's. One instance (`kong_gateway`) serves every test that can share
it; `start_gateway` starts another for a test that needs a variant config, other
settings or upstreams of its own.
"""

import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path

import jwt
import pytest
import requests

from kong.config import load, render, with_upstreams, write_rendered

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # as scripts/stack runs it
import native_kong  # noqa: E402 - scripts/ is no package

ROOT = Path(__file__).resolve().parents[2]
KONG_YML = ROOT / "kong.yml"
ISSUER = "shop-users"  # the jwt_secrets key in kong.yml
# Quotes, $, commas, parentheses, # and non-ASCII: whatever YAML or Kong's config
# loading could treat specially must still reach the jwt plugin intact. Long
# enough for HS512.
TEST_SECRET = "gateway 'test' \"secret\" $HOME ${X}, (parens) #hash \\ ünïcödé — 0123456789abcdef0123456789"
KONG = shutil.which("kong") or "/usr/local/bin/kong"
START_DEADLINE = 20.0
# SIGQUIT lets nginx finish the requests in flight; a test's slow socket may keep one open.
STOP_DEADLINE = 15.0


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
    always sends a Server header, as BaseHTTPRequestHandler does.) X-Echo-Status:
    <code> makes it answer with that status instead of 200."""

    protocol_version = "HTTP/1.1"  # keep-alive: Kong keeps a pool of upstream connections
    # The head and the body go out in two writes: with Nagle's algorithm the second
    # waits for Kong's delayed ACK, 40 ms on every request.
    disable_nagle_algorithm = True
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
        self.send_response(int(self.headers.get("X-Echo-Status") or 200))
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
        pass  # one line per request would fill the test output


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # Kong drops idle pooled connections when it stops: not an error here.
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


@pytest.fixture(scope="session", autouse=True)
def upstreams_take_many_headers() -> Iterator[None]:
    """http.server refuses more than 100 header lines (http.client's private
    _MAXHEADERS); the services' Gunicorn takes 32768 (limit_request_fields in
    common/http/gunicorn_conf.py). Kong adds ~10 of its own to the 100 a client
    may send, so the test upstreams must take more too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http.client, "_MAXHEADERS", 1000)
        yield


@pytest.fixture(scope="session")
def echo_upstreams() -> Iterator[dict[str, str]]:
    """One echo server per kong.yml service: service name -> "host:port"."""
    with echo_server("users") as users, echo_server("products") as products, echo_server("orders") as orders:
        yield {"users": users, "products": products, "orders": orders}


@contextmanager
def refusing_address() -> Iterator[str]:
    """An address that refuses connections: bound, so nobody else takes it, but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# -- Kong -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Kong:
    url: str  # the proxy listener
    status_url: str  # the status API: /status, /status/ready and the prometheus plugin's /metrics
    output: Path  # nginx's stdout and stderr: kong.env sends both logs there

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def kong_environment(prefix: Path, declarative_config: Path, proxy_port: int, status_port: int, **overrides) -> dict:
    """kong/kong.env as the native stack uses it (native_kong.env), on this
    instance's own loopback ports.

    KONG_* variables of the calling shell are left out: only kong.env and the
    overrides decide."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("KONG_")}
    return {
        **inherited,
        **native_kong.env(
            f"127.0.0.1:{proxy_port}", f"127.0.0.1:{status_port}", prefix=prefix, config=declarative_config
        ),
        # kong.env's 127.0.0.1:8001 is the running stack's.
        "KONG_ADMIN_LISTEN": "off",
        **overrides,
    }


def upstream_targets(upstreams: Mapping[str, str | list[str]]) -> dict[str, list[str]]:
    """{"users": "h:p"} or {"users": "h:p,h:p"} or {"users": ["h:p", ...]} as with_upstreams takes it."""
    return {
        name: addresses.split(",") if isinstance(addresses, str) else list(addresses)
        for name, addresses in upstreams.items()
    }


@contextmanager
def running_kong(
    config: dict, upstreams: Mapping[str, str | list[str]], workdir: Path, **settings_overrides: str
) -> Iterator[Kong]:
    """Kong running `config` (a rendered kong.yml) with each service balanced over
    its `upstreams`, and kong.env's settings (KONG_*=... keyword arguments change
    them); stopped on the way out."""
    declarative = workdir / "kong.yml"  # holds the secret: private to this user, read by nginx's master only
    write_rendered(with_upstreams(config, upstream_targets(upstreams)), declarative)
    # nginx's workers run as another user (Kong's nginx_user: kong, or nobody where
    # there is no such user) and need the prefix (its LMDB, its sockets); pytest's
    # temporary directories are private to this one.
    prefix = Path(tempfile.mkdtemp(prefix="kong-gateway-test-"))
    prefix.chmod(0o755)
    output = workdir / "kong.out"
    proxy_port, status_port = free_port(), free_port()
    env = kong_environment(prefix, declarative, proxy_port, status_port, **settings_overrides)
    try:
        prepared = subprocess.run(
            [KONG, "prepare", "-p", str(prefix)], env=env, capture_output=True, text=True, timeout=60
        )
        if prepared.returncode != 0:
            pytest.fail(f"kong prepare failed:\n{prepared.stdout}{prepared.stderr}")
        with output.open("wb") as out:
            # A session of its own: if it ever has to be killed, its workers go with it.
            process = subprocess.Popen(
                [native_kong.NGINX, "-p", str(prefix), "-c", "nginx.conf"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        kong = Kong(f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{status_port}", output)
        try:
            _wait_until_ready(kong, process)
            yield kong
        finally:
            _stop(process)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def _wait_until_ready(kong: Kong, process: subprocess.Popen) -> None:
    """/status/ready is 200 once the declarative config is loaded and every worker proxies."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Kong exited with {process.returncode}:\n{kong.log()}")
        try:
            if requests.get(f"{kong.status_url}/status/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still initialising
            pass
        time.sleep(0.05)
    pytest.fail(f"Kong wasn't ready within {START_DEADLINE}s:\n{kong.log()}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGQUIT)  # nginx's graceful shutdown
    try:
        process.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:  # don't leave it (or its workers) behind
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def kong_instance(kong_config, echo_upstreams, tmp_path_factory) -> Iterator[Kong]:
    """Kong running kong.yml with kong.env's settings, every service on an echo server;
    shared by every test that doesn't change it (it takes a second or two to start)."""
    with running_kong(kong_config, echo_upstreams, tmp_path_factory.mktemp("kong")) as kong:
        yield kong


@pytest.fixture(scope="session")
def kong_gateway(kong_instance) -> str:
    """The proxy URL of the shared Kong."""
    return kong_instance.url


@pytest.fixture
def start_gateway(kong_config, tmp_path) -> Iterator:
    """Factory: Kong running kong.yml (or the given variant of it) over the given
    upstreams, with kong.env's settings (KONG_*=... keyword arguments change them);
    stopped after the test. Returns the running Kong."""
    numbers = count(1)
    with ExitStack() as running:

        def start(upstreams: Mapping[str, str | list[str]], config: dict | None = None, **settings_overrides) -> Kong:
            workdir = tmp_path / f"kong-{next(numbers)}"
            workdir.mkdir()
            config = kong_config if config is None else config
            return running.enter_context(running_kong(config, upstreams, workdir, **settings_overrides))

        yield start
