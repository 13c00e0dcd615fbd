"""Transactional outbox: events are stored with the change they announce, then relayed.

Publishing straight after a commit loses the event when the process dies or the
broker is away in between (the dual write). Instead the event is a row written in
the business transaction, so it exists exactly when the change does, and a relay
process publishes unsent rows with publisher confirms and marks them sent only
after the broker confirmed. A row that fails is retried with backoff, never
forgotten. Several relays can run: each locks its batch with FOR UPDATE SKIP
LOCKED, so no row is published twice in the normal case. (A relay that dies after
the confirm and before its commit republishes that row: delivery is at least
once, which the consumers' idempotency absorbs.)
"""
import logging
from datetime import datetime, timedelta, timezone

from flask_sqlalchemy import SQLAlchemy
from kombu.exceptions import KombuError
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, String, Text, Uuid, delete, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from common import context, metrics
from common.daemon import GracefulLoop, backoff
from common.db import DATABASE_UNAVAILABLE
from common.events import Publisher

log = logging.getLogger(__name__)


class OutboxMixin:
    """Columns of a service's outbox table (`class OutboxMessage(OutboxMixin, db.Model)`)."""

    __tablename__ = "outbox"

    @declared_attr.directive
    def __table_args__(cls):
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


def enqueue(session: Session, model: type[OutboxMixin], event: dict) -> None:
    """Add `event` to the outbox in the caller's transaction; its type is its routing
    key, and the request id in hand travels with it in the message headers."""
    headers = {context.AMQP_HEADER: context.request_id()} if context.request_id() else {}
    session.add(model(event_id=event["event_id"], routing_key=event["type"], payload=event, headers=headers))


class OutboxRelay(GracefulLoop):
    def __init__(
        self,
        db: SQLAlchemy,
        model: type[OutboxMixin],
        publisher: Publisher,
        *,
        service: str = "-",
        batch_size: int = 100,
        idle_interval: float = 0.05,
        retention: timedelta = timedelta(days=1),
        heartbeat_path: str | None = None,
    ):
        super().__init__(heartbeat_path)
        self.db = db
        self.model = model
        self.publisher = publisher
        self.service = service
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.retention = retention
        self._last_prune = datetime.min.replace(tzinfo=timezone.utc)

    def serve(self) -> None:
        self.install_signal_handlers()
        log.info("relaying %s", self.model.__tablename__)
        try:
            self.run()
        finally:
            self.publisher.close()
        log.info("stopped")

    def run(self) -> None:
        outage = failures = 0
        while not self.should_stop:
            try:
                sent, failed = self.relay_batch()
                self.prune()
            except DATABASE_UNAVAILABLE as exc:  # wait for the database; every row is kept
                self.db.session.remove()
                outage += 1
                self.beat(problem="database unreachable")
                log.warning("database unreachable (%s); retrying in %.1fs", exc.orig or exc, backoff(outage))
                self.pause(backoff(outage))
                continue
            self.beat(problem="broker unreachable" if failed else None)
            if outage:
                log.info("database reachable again")
            outage = 0
            failures = failures + 1 if failed else 0
            if failed:
                # The broker is likely away: back off as a whole, not row by row.
                self.pause(backoff(failures))
            elif not sent:
                self.pause(self.idle_interval)

    def relay_batch(self) -> tuple[int, bool]:
        """Publish one batch of due rows; returns (rows sent, whether a publish failed)."""
        session = self.db.session
        model = self.model
        due = session.scalars(
            self.db.select(model)
            .where(model.published_at.is_(None), model.next_attempt_at <= func.now())
            .order_by(model.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        sent = 0
        for row in due:
            with context.bound(row.headers.get(context.AMQP_HEADER)):
                if not self._publish(row):
                    # The broker is likely away: the rest of the batch waits for the retry.
                    session.commit()
                    return sent, True
            sent += 1
        session.commit()
        return sent, False

    def _publish(self, row: OutboxMixin) -> bool:
        try:
            self.publisher.publish(row.payload, row.routing_key, row.headers)
        except (KombuError, OSError) as exc:  # broker away or refusing: keep the row for later
            row.attempts += 1
            row.last_error = str(exc)[:500]
            row.next_attempt_at = datetime.now(timezone.utc) + timedelta(seconds=backoff(row.attempts))
            log.warning("publishing %s %s failed (attempt %d): %s", row.routing_key, row.event_id, row.attempts, exc)
            metrics.PUBLISH_FAILURES.labels(self.service).inc()
            return False
        row.published_at = datetime.now(timezone.utc)
        log.info("published %s %s", row.routing_key, row.event_id, extra={"order_id": row.payload.get("order_id")})
        metrics.EVENTS_PUBLISHED.labels(self.service, row.routing_key).inc()
        return True

    def prune(self) -> None:
        """Delete rows sent longer ago than the retention; they are kept a while for inspection."""
        now = datetime.now(timezone.utc)
        if now - self._last_prune < timedelta(minutes=1):
            return
        self._last_prune = now
        self.db.session.execute(delete(self.model).where(self.model.published_at < now - self.retention))
        self.db.session.commit()


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
                    select(func.count(), func.extract("epoch", func.now() - func.min(self.model.created_at))).where(unsent)
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


def serve_relay(app, db: SQLAlchemy, model: type[OutboxMixin], heartbeat_path: str) -> None:
    """The body of a service's relay process."""
    service = app.config["SERVICE_NAME"]
    with app.app_context():
        metrics.serve([OutboxCollector(db.engine, model, service)])
        relay = OutboxRelay(db, model, Publisher(app.config["AMQP_URL"]), service=service, heartbeat_path=heartbeat_path)
        relay.serve()
