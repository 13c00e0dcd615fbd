"""Database pieces every service shares: the SQLAlchemy object, the errors that
mean "unreachable", and how connections survive a PostgreSQL restart."""

import time

import msgspec
from flask_sqlalchemy import SQLAlchemy
from psycopg2 import Error as DriverError
from sqlalchemy import BigInteger, MetaData, any_, bindparam, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

# Stable constraint names, so Alembic migrations can find and alter them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Errors that mean "the database can't be reached right now" (down, restarting,
# connection dropped) rather than "this can never work": background loops wait
# these out, and requests answer 503 with Retry-After.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)

# A pooled connection idle for longer than this is checked before use. Short, so
# that after a PostgreSQL restart a process finds out without failing a request
# unless one of its connections was in use at the time; the pool hands out its
# most recently used connection first (pool_use_lifo), so under load the
# connections in use stay warm and are never pinged.
IDLE_CHECK_AFTER = 1.0

# JSONB columns (the outbox's payloads) encoded and decoded by msgspec: several
# times faster than the json module on the relays' and workers' hot paths.
JSON_OPTIONS = {
    "json_serializer": lambda value: msgspec.json.encode(value).decode(),
    "json_deserializer": msgspec.json.decode,
}


def make_db(**session_options) -> SQLAlchemy:
    """Each service gets its own SQLAlchemy object, so its metadata (and so its
    migrations) holds only its own tables."""
    return SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options=session_options)


def any_id(name: str):
    """`column == any_id("ids")`: equal to any id of the BIGINT[] bound as `name`.
    One array parameter, so a statement of one shape serves a batch of any size
    and is compiled once (an expanding IN renders anew for each length)."""
    return any_(bindparam(name, type_=ARRAY(BigInteger)))


def read_one(db: SQLAlchemy, statement, params: dict):
    """The first row of a read-only statement, or None, on a pooled connection
    outside the request's session: the hottest reads then skip building a
    session and tearing it down (a sixth of a read's CPU, docs/benchmarks.md).
    The connection goes back to the pool at once."""
    with db.engine.connect() as connection:
        return connection.execute(statement, params).first()


def read_all(db: SQLAlchemy, statement, params: dict) -> list:
    """Every row of a read-only statement, as read_one."""
    with db.engine.connect() as connection:
        return connection.execute(statement, params).all()


def survive_restarts(engine: Engine) -> None:
    """Make the pool recover from a PostgreSQL restart without a round trip per checkout.

    SQLAlchemy's pool_pre_ping pings on every checkout: under load that is one
    extra round trip per request for nothing. Instead, a connection that has sat
    idle in the pool for over a second is pinged before use (a quiet service finds
    out about a restart before a request does), and a connection that breaks in use
    makes SQLAlchemy discard every connection of the pool opened before the
    break: after a restart under load only the requests in flight fail, with a
    503, and the next ones reconnect.
    """
    event.listen(engine, "checkin", _note_idle_since)
    event.listen(engine, "checkout", _check_if_idle_long)


def _note_idle_since(dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _check_if_idle_long(dbapi_connection, record, proxy) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_CHECK_AFTER:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DriverError as exc:
        # The pool then replaces this connection and tries again (up to 3 times).
        raise DisconnectionError() from exc
