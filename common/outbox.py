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
from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, String, Text, Uuid, delete, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

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


def enqueue(session: Session, model: type[OutboxMixin], event: dict, headers: dict | None = None) -> None:
    """Add `event` to the outbox in the caller's transaction; its type is its routing key."""
    session.add(model(event_id=event["event_id"], routing_key=event["type"], payload=event, headers=headers or {}))


class OutboxRelay(GracefulLoop):
    def __init__(
        self,
        db: SQLAlchemy,
        model: type[OutboxMixin],
        publisher: Publisher,
        *,
        batch_size: int = 100,
        idle_interval: float = 0.05,
        retention: timedelta = timedelta(days=1),
        heartbeat_path: str | None = None,
    ):
        super().__init__(heartbeat_path)
        self.db = db
        self.model = model
        self.publisher = publisher
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
            self.beat()
            try:
                sent, failed = self.relay_batch()
                self.prune()
            except DATABASE_UNAVAILABLE as exc:  # wait for the database; every row is kept
                self.db.session.remove()
                outage += 1
                log.warning("database unreachable (%s); retrying in %.1fs", exc.orig or exc, backoff(outage))
                self.pause(backoff(outage))
                continue
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
        sent, failed = 0, False
        for row in due:
            try:
                self.publisher.publish(row.payload, row.routing_key, row.headers)
            except (KombuError, OSError) as exc:  # broker away or refusing: keep the row for later
                row.attempts += 1
                row.last_error = str(exc)[:500]
                row.next_attempt_at = datetime.now(timezone.utc) + timedelta(seconds=backoff(row.attempts))
                log.warning("publishing %s %s failed (attempt %d): %s", row.routing_key, row.event_id, row.attempts, exc)
                failed = True
                break
            row.published_at = datetime.now(timezone.utc)
            sent += 1
        session.commit()
        if sent:
            log.info("published %d event(s)", sent)
        return sent, failed

    def prune(self) -> None:
        """Delete rows sent longer ago than the retention; they are kept a while for inspection."""
        now = datetime.now(timezone.utc)
        if now - self._last_prune < timedelta(minutes=1):
            return
        self._last_prune = now
        self.db.session.execute(delete(self.model).where(self.model.published_at < now - self.retention))
        self.db.session.commit()


def serve_relay(app, db: SQLAlchemy, model: type[OutboxMixin], heartbeat_path: str) -> None:
    """The body of a service's relay process."""
    with app.app_context():
        OutboxRelay(db, model, Publisher(app.config["AMQP_URL"]), heartbeat_path=heartbeat_path).serve()
