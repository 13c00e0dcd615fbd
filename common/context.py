"""The request id: one id for one client request, across every process it touches.

The gateway assigns it (X-Request-ID) or keeps whatever one the client sent; each
service takes it from the request (or, if it isn't well-formed, makes its own),
passes it on in the HTTP call orders makes to products, and stores it with every
outbox event, whose AMQP headers carry it to the workers, which handle each
message under it. Every log line written
meanwhile names it, so `scripts/stack logs --request-id ID` tells the whole story.
"""

import re
import uuid
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = "X-Request-ID"
AMQP_HEADER = "x-request-id"
# Kong passes any client value on; anything else than this is replaced here, never
# echoed into logs.
VALID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_user_id: ContextVar[str | None] = ContextVar("user_id", default=None)


def accept(value: str | None) -> str:
    """The given id if it is well-formed, else a new one."""
    return value if value and VALID.match(value) else str(uuid.uuid4())


def request_id() -> str | None:
    return _request_id.get()


def user_id() -> str | None:
    return _user_id.get()


def set_ids(request_id_value: str | None, user_id_value: str | None = None) -> None:
    """Name the request (and user) in hand; (None, None) when it is done, since
    threads are reused for the next one."""
    _request_id.set(request_id_value)
    _user_id.set(user_id_value)


@contextmanager
def bound(request_id_value: str | None):
    """Everything inside runs (and logs) under this request id."""
    previous = (request_id(), user_id())
    set_ids(request_id_value)
    try:
        yield
    finally:
        set_ids(*previous)


def outgoing_headers() -> dict:
    """Headers that carry the current request id on a call to another service."""
    current = request_id()
    return {HEADER: current} if current else {}
