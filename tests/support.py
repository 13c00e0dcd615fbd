"""Helpers the service tests share (fixtures live in conftest.py)."""

import dataclasses
import importlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import requests
from flask_migrate import upgrade
from requests.adapters import HTTPAdapter
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from common.http import shedding
from common.settings import Settings
from tests.rawhttp import RawResponse

ROOT = Path(__file__).resolve().parents[1]
TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
# What this checkout's test databases and broker vhost are called: products_test,
# shop_test, ... Another checkout on the same host (a second worktree) sets its own
# SHOP_TEST_NAMESPACE, so two runs of the suite don't drop each other's databases.
NAMESPACE = os.environ.get("SHOP_TEST_NAMESPACE", "test")


def test_database(service: str) -> str:
    return f"{service}_{NAMESPACE}"


def fresh_database(pg_url: str, name: str) -> str:
    """Drop and recreate database `name`; return its URL."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False)


def config_for(service: str, database_url: str, amqp_url: str, **settings) -> dict:
    """The Flask config of `service` on these test parts; keyword arguments
    replace settings (common.settings.Settings fields: jwt_secret=..., ...)."""
    base = Settings.from_env(service, environ={})  # the defaults, whatever this shell has set
    chosen = dataclasses.replace(base, database_url=database_url, amqp_url=amqp_url, **settings)
    return {**chosen.flask_config(), "TESTING": True}


def offline_app(service: str):
    """The service's app as its settings build it, pointed at no database or
    broker: for what needs only its routes, documents and wiring."""
    nowhere = "postgresql+psycopg2://nobody@127.0.0.1:1/none", "amqp://nobody@127.0.0.1:1//"
    return importlib.import_module(service).create_app(config_for(service, *nowhere, jwt_secret=TEST_SECRET))


def migrated_app(create_app, config: dict):
    """The app with its schema built by its own migrations, as in production."""
    app = create_app(config)
    with app.app_context():
        upgrade()
    return app


def empty_tables(app, db) -> None:
    with app.app_context():
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def eventually(check, deadline: float = 10.0, interval: float = 0.05):
    """Poll `check` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"still false after {deadline}s: {check.__doc__ or check}")
        time.sleep(interval)


@contextmanager
def running(loop, app=None):
    """Run a worker or relay loop on a thread (as a process runs it on its main
    thread), inside `app`'s context if given; stop it on the way out and insist
    it stops."""

    def run():
        with app.app_context() if app else nullcontext():
            loop.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(timeout=15)
    assert not thread.is_alive(), "the loop did not stop when asked"


def queue_depth(connection, queue) -> int:
    return queue(connection.default_channel).queue_declare(passive=True).message_count


def politely(send: Callable[[], object], deadline: float = 150.0):
    """send() again while the gateway's per-address rate limit refuses it (429),
    or a service sheds it as a read that queued too long (503, "busy":
    common/http/shedding.py), waiting as Retry-After says (at most the rest of
    Kong's clock minute), as a well-behaved client does; then its answer. Neither
    refusal did anything, so any request may be sent again. Under Docker, Kong
    sees every client on this host as one address: the suite's own sign-ups and
    logins share one budget and take turns; and on a busy CI machine a read may
    queue past the shedding budget. For a requests.Response or a tests.rawhttp one."""
    end = time.monotonic() + deadline
    while True:
        response = send()
        if not _refused_for_now(response) or time.monotonic() > end:
            return response
        time.sleep(int(header_of(response, "Retry-After") or 1))


def _refused_for_now(response) -> bool:
    status = status_of(response)
    if status == 429:
        return True
    if status != 503:
        return False
    try:
        body = response.json()
    except ValueError:  # not JSON: not a service's shed read
        return False
    return isinstance(body, dict) and body.get("message") == shedding.BUSY


def status_of(response: requests.Response | RawResponse) -> int:
    return response.status if isinstance(response, RawResponse) else response.status_code


def header_of(response: requests.Response | RawResponse, name: str) -> str | None:
    return response.header(name) if isinstance(response, RawResponse) else response.headers.get(name)


class _SourceAddressAdapter(HTTPAdapter):
    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(address: str) -> requests.Session:
    """A session whose connections come from `address`: every 127.x.y.z is this
    host, so a test can be a client of its own to per-address limits."""
    session = requests.Session()
    session.mount("http://", _SourceAddressAdapter(address))
    return session


def fresh_loopback_addresses(block: int) -> Iterator[str]:
    """127.<block>.x.y, each once: addresses no client of this run has been yet.
    One block per user of them, so that two users never meet. (x from 1: block 0
    must not hand out 127.0.0.1, every default client's address.)"""
    return (f"127.{block}.{third}.{fourth}" for third in range(1, 255) for fourth in range(2, 255))


class EachRequestFromANewAddress(requests.Session):
    """A session whose every request comes from the next of `addresses`: a client
    that is never the same one twice to the gateway's per-address limits; and,
    where they count it as one all the same (under Docker), a polite one."""

    def __init__(self, addresses: Iterator[str]):
        super().__init__()
        self.addresses = addresses

    def send(self, request, **kwargs):
        with client_from(next(self.addresses)) as client:
            return politely(lambda: client.send(request, **kwargs))
