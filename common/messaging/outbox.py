"""Transactional outbox: events are stored with the change they announce, then relayed.

Publishing straight after a commit loses the event when the process dies or the
broker is away in between (the dual write). Instead the event is a row written
in the business transaction, so it exists exactly when the change does, and a
relay (common/messaging/relay.py) publishes unsent rows with publisher confirms
and marks them sent only after the broker confirmed. An insert into the outbox
NOTIFYs the relay when its transaction commits (a trigger, in each service's
migrations), so an event leaves within milliseconds of its commit.
"""

from collections.abc import Iterable
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, String, Text, Uuid, func, insert, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from common import context
from common.database import DATABASE_UNAVAILABLE
from common.messaging.publisher import Outgoing

# What the outbox trigger NOTIFYs on commit, and the relay LISTENs to.
CHANNEL = "outbox"


class OutboxMixin:
    """Columns of a service's outbox table (`class OutboxMessage(OutboxMixin, db.Model)`)."""

    __tablename__ = "outbox"

    @declared_attr.directive
    def __table_args__(cls):  # noqa: N805 - a declared_attr takes the class
        # A new Index per table: one Index object can belong to only one table.
        # It serves the relay's only query, unsent rows that are due; sent rows drop out of it.
        return (Index("ix_outbox_unsent", "next_attempt_at", "id", postgresql_where=text("published_at IS NULL")),)

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


def message(event: dict) -> Outgoing:
    """`event` as the outbox keeps it: routed by its type, and carrying the
    request id in hand in its AMQP headers, so its consumer logs under it too."""
    request_id = context.request_id()
    return Outgoing(event, event["type"], {context.AMQP_HEADER: request_id} if request_id else {})


def add(session: Session, model: type[OutboxMixin], messages: Iterable[Outgoing]) -> None:
    """Add the messages to the outbox in the caller's transaction, in one statement."""
    rows = [
        {"event_id": m.event["event_id"], "routing_key": m.routing_key, "payload": m.event, "headers": m.headers}
        for m in messages
    ]
    if rows:
        session.execute(insert(model.__table__), rows)


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
