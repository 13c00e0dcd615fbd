"""Transactional outbox: events are stored with the change they announce, then relayed.

Publishing straight after a commit loses the event when the process dies or the
broker is away in between (the dual write). Instead the event is a row written
in the business transaction, so it exists exactly when the change does, and a
relay (common/messaging/relay.py) publishes unsent rows with publisher confirms
and marks them sent only after the broker confirmed. A commit that added to the
outbox NOTIFYs the relays right after (wake_relays_after_commit), so an event
leaves within milliseconds.
"""

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask_sqlalchemy import SQLAlchemy
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, SessionTransaction, declared_attr, mapped_column
from sqlalchemy.sql import Executable

from common import context
from common.database import DATABASE_UNAVAILABLE
from common.messaging.event import Event, payload
from common.messaging.publisher import Outgoing

log = logging.getLogger(__name__)

# What producers NOTIFY and the relay LISTENs to.
CHANNEL = "outbox"
# The NOTIFY goes in a transaction of its own, after the producing one, and that
# transaction doesn't wait for the disk. In the producing transaction it would be
# simpler, but PostgreSQL serialises the commits of all transactions that NOTIFY,
# cluster-wide, holding a lock through each one's WAL flush (PreCommit_Notify in
# src/backend/commands/async.c): measured here, that halved the orders placed per
# second. A notification is only a wake-up call: one that is lost (a crash right
# after the commit) costs the relay's poll interval, never an event.
_NOTIFY = text("SELECT set_config('synchronous_commit', 'off', true), pg_notify(:channel, '')")


class OutboxMixin:
    """Columns of a service's outbox table (`class OutboxMessage(OutboxMixin, db.Model)`)."""

    __tablename__ = "outbox"

    @declared_attr.directive
    def __table_args__(cls):  # noqa: N805 - a declared_attr takes the class
        # A new Index per table: one Index object can belong to only one table.
        # ix_outbox_unsent serves the relay's query, unsent rows that are due; sent
        # rows drop out of it, into ix_outbox_sent, which serves the pruning.
        return (
            Index("ix_outbox_unsent", "next_attempt_at", "id", postgresql_where=text("published_at IS NULL")),
            Index("ix_outbox_sent", "published_at", postgresql_where=text("published_at IS NOT NULL")),
        )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), unique=True)
    routing_key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict] = mapped_column(JSONB)
    headers: Mapped[dict] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class Statements:
    """The statements the outbox is written and relayed with, built once per
    table: on the hot paths, building and caching a statement for every call
    costs more than running it."""

    add: Executable
    due: Executable  # :limit unsent rows that are due, locked, skipping those others hold
    sent: Executable  # the rows :ids published
    failed: Executable  # the rows :ids not confirmed: :error, and a next attempt after a backoff


@functools.cache
def statements(model: type[OutboxMixin]) -> Statements:
    table = model.__table__
    ids = bindparam("ids", expanding=True)
    return Statements(
        add=insert(table),
        due=select(table.c.id, table.c.routing_key, table.c.payload, table.c.headers)
        .where(table.c.published_at.is_(None), table.c.next_attempt_at <= func.now())
        .order_by(table.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True),
        sent=update(table).where(table.c.id.in_(ids)).values(published_at=func.now()),
        failed=update(table)
        .where(table.c.id.in_(ids))
        .values(
            attempts=table.c.attempts + 1,
            last_error=bindparam("error"),
            # 0.5 s, doubling, at most 5 s: as common.messaging.process.backoff.
            next_attempt_at=func.now()
            + func.least(
                func.power(2, table.c.attempts) * literal_column("interval '0.5 second'"),
                literal_column("interval '5 seconds'"),
            ),
        ),
    )


def message(event: Event) -> Outgoing:
    """`event` as the outbox keeps it: plain JSON data, routed by its type, and
    carrying the request id in hand in its AMQP headers, so its consumer logs under it too."""
    request_id = context.request_id()
    return Outgoing(payload(event), event.type, {context.AMQP_HEADER: request_id} if request_id else {})


def add(session: Session, model: type[OutboxMixin], messages: Iterable[Outgoing]) -> None:
    """Add the messages to the outbox in the caller's transaction, in one statement."""
    rows = [
        {"event_id": m.event["event_id"], "routing_key": m.routing_key, "payload": m.event, "headers": m.headers}
        for m in messages
    ]
    if rows:
        session.connection().execute(statements(model).add, rows)
        session.info[_ADDED] = True


# The session's info key: this transaction added to the outbox (True), and has
# committed (_COMMITTED), so the relays are due a NOTIFY once it has ended.
_ADDED = "outbox_added"
_COMMITTED = "committed"


def wake_relays_after_commit(db: SQLAlchemy) -> None:
    """From now on, every commit of a transaction that added to the outbox NOTIFYs
    the relays, whoever committed it (a route, the consumer, the idempotency keys)."""
    listeners = (
        ("after_commit", _after_commit),
        ("after_rollback", _after_rollback),
        ("after_transaction_end", _after_transaction_end),
    )
    for name, listener in listeners:
        if not event.contains(db.session, name, listener):  # one app is built for each test, say
            event.listen(db.session, name, listener)


def _after_commit(session: Session) -> None:
    if session.info.get(_ADDED):
        session.info[_ADDED] = _COMMITTED


def _after_rollback(session: Session) -> None:
    session.info.pop(_ADDED, None)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # Not in after_commit: the session still holds the committed transaction's
    # connection there (it gives it back to the pool only after), so the NOTIFY
    # would need a second one, and a thread holding one connection while it waits
    # for another deadlocks against its neighbours once the pool is used up
    # (Session.commit in sqlalchemy/orm/session.py: after_commit, then close()
    # returns the connections, then after_transaction_end). Here it has given it
    # back: a thread never holds two.
    if transaction.parent is None and session.info.pop(_ADDED, None) == _COMMITTED:
        notify(session.get_bind())


def notify(engine: Engine) -> None:
    """Wake the relays, in a transaction of its own (see _NOTIFY)."""
    try:
        with engine.connect() as connection:
            connection.execute(_NOTIFY, {"channel": CHANNEL})
            connection.commit()
    except DATABASE_UNAVAILABLE as exc:  # the events are committed; the relay's poll will find them
        log.warning("could not notify the relay (%s); it will find the events by polling", exc)


class OutboxCollector:
    """The outbox backlog and the age of its oldest unsent event, read on scrape."""

    def __init__(self, engine, model: type[OutboxMixin], service: str):
        self.engine = engine
        self.model = model
        self.service = service

    def collect(self):
        unsent = self.model.published_at.is_(None)
        try:
            with self.engine.connect() as connection:
                count, age = connection.execute(
                    select(func.count(), func.extract("epoch", func.now() - func.min(self.model.created_at))).where(
                        unsent
                    )
                ).one()
        except DATABASE_UNAVAILABLE:  # nothing to report while the database is away
            return
        backlog = GaugeMetricFamily("shop_outbox_backlog", "Events not yet published", labels=["service"])
        backlog.add_metric([self.service], count)
        oldest = GaugeMetricFamily(
            "shop_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished event", labels=["service"]
        )
        oldest.add_metric([self.service], float(age or 0))
        yield backlog
        yield oldest
