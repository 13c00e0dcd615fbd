"""The outbox relay: publishes a service's unsent outbox rows, a batch at a time.

It sleeps on PostgreSQL's LISTEN until a producer NOTIFYs (right after the
commit that added to the outbox: common/messaging/outbox.py says why not inside
it), so an idle relay costs nothing and an event leaves within milliseconds of
its commit; a slow poll covers a notification that never came, and a LISTEN
connection that breaks (a PostgreSQL restart) is dropped and opened anew. Each
batch is locked with FOR UPDATE SKIP LOCKED (several relays can run: each takes
rows the others don't hold), published with one wait for all its confirms, and
marked sent in one statement. A batch the broker didn't confirm
stays unsent, with its attempt count, error and next attempt time (backoff), and
the relay backs off as a whole while the broker is away. A relay that dies after
the confirms and before its commit publishes that batch again: delivery is at
least once, which the consumers' idempotency absorbs.
"""

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg2
from flask_sqlalchemy import SQLAlchemy
from kombu import Queue
from psycopg2 import sql

from common import context, metrics, retention
from common.database import DATABASE_UNAVAILABLE
from common.messaging import outbox
from common.messaging.outbox import OutboxCollector, OutboxMixin
from common.messaging.process import Loop, backoff
from common.messaging.publisher import BROKER_ERRORS, Outgoing, Publisher, PublishFailed
from common.retention import Retention

log = logging.getLogger(__name__)


class OutboxRelay(Loop):
    def __init__(
        self,
        db: SQLAlchemy,
        model: type[OutboxMixin],
        publisher: Publisher,
        *,
        service: str = "-",
        batch_size: int = 200,
        poll_seconds: float = 5.0,
        linger: float = 0.0,
        retentions: Sequence[Retention] = (),
        heartbeat_path: str | None = None,
    ):
        super().__init__(heartbeat_path)
        self.db = db
        self.model = model
        self.publisher = publisher
        self.service = service
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.linger = linger
        self.retentions = retentions
        self.statements = outbox.statements(model)
        self._listener = None
        self._last_prune = datetime.min.replace(tzinfo=UTC)

    def serve(self) -> None:
        self.install_signal_handlers()
        log.info("relaying %s", self.model.__tablename__)
        try:
            self.run()
        finally:
            self.publisher.close()
            self._stop_listening()
            self.close()
        log.info("stopped")

    def run(self) -> None:
        outage = failures = 0
        while not self.should_stop:
            # One round, waiting for news included: a LISTEN connection that breaks
            # while the relay sleeps on it (a PostgreSQL restart) is an outage too.
            try:
                self._listen()
                failed = self.relay_due()
                self.prune()
                if outage:
                    log.info("database reachable again")
                outage = 0
                failures = failures + 1 if failed else 0
                self.beat(problem="broker unreachable" if failed else None)
                if failed:
                    # The broker is likely away: back off as a whole, not row by row.
                    self.pause(backoff(failures))
                else:
                    self._wait_for_news()
            except (*DATABASE_UNAVAILABLE, psycopg2.Error) as exc:  # wait for the database; every row is kept
                self.db.session.remove()
                self._stop_listening()
                outage += 1
                self.beat(problem="database unreachable")
                log.warning("database unreachable (%s); retrying in %.1fs", exc, backoff(outage))
                self.pause(backoff(outage))

    def relay_due(self) -> bool:
        """Publish batches until none is due; True if a publish failed."""
        while True:
            sent, failed = self.relay_batch()
            if failed or sent < self.batch_size:
                return failed

    def relay_batch(self) -> tuple[int, bool]:
        """Publish one batch of due rows; returns (rows sent, whether the publish failed)."""
        session = self.db.session
        connection = session.connection()
        rows = connection.execute(self.statements.due, {"limit": self.batch_size}).all()
        if not rows:
            session.rollback()
            return 0, False
        ids = [row.id for row in rows]
        try:
            self.publisher.publish([Outgoing(row.payload, row.routing_key, row.headers or {}) for row in rows])
        except (PublishFailed, *BROKER_ERRORS) as exc:  # keep the rows for a later attempt
            connection.execute(self.statements.failed, {"ids": ids, "error": str(exc)[:500]})
            session.commit()
            log.warning("publishing %d events failed: %s", len(rows), exc)
            metrics.PUBLISH_FAILURES.labels(self.service).inc(len(rows))
            return 0, True
        connection.execute(self.statements.sent, {"ids": ids})
        session.commit()
        for row in rows:
            with context.bound(row.headers.get(context.AMQP_HEADER) if row.headers else None):
                log.info("published %s %s", row.routing_key, row.payload["event_id"])
        for routing_key, count in Counter(row.routing_key for row in rows).items():
            metrics.EVENTS_PUBLISHED.labels(self.service, routing_key).inc(count)
        return len(rows), False

    def prune(self) -> None:
        """Delete what the bookkeeping tables no longer keep (common/retention.py): a
        round a minute, and, while a backlog lasts, a bounded round between batches of events."""
        now = datetime.now(UTC)
        if now - self._last_prune < timedelta(minutes=1):
            return
        if not retention.prune(self.db.session, self.retentions):
            self._last_prune = now  # caught up: the next round in a minute; else after the next batch of events

    # -- LISTEN/NOTIFY -------------------------------------------------------------

    def _listen(self) -> None:
        if self._listener is not None:
            return
        url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._listener = psycopg2.connect(url, connect_timeout=3)
        self._listener.autocommit = True
        with self._listener.cursor() as cursor:
            cursor.execute(sql.SQL("LISTEN {}").format(sql.Identifier(outbox.CHANNEL)))

    def _wait_for_news(self) -> None:
        """Until a producing transaction commits, the poll interval passes, or a stop."""
        if self.wait_readable(self._listener.fileno(), self.poll_seconds):
            # The commits right behind this one go out in the same batch.
            self.pause(self.linger)
            self._listener.poll()
            self._listener.notifies.clear()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except psycopg2.Error:  # already broken
                pass


def serve_relay(
    app,
    model: type[OutboxMixin],
    heartbeat_path: str,
    *,
    declare: Sequence[Queue],
    retentions: Sequence[Retention],
) -> None:
    """The body of a service's relay process: `declare` as Publisher takes it,
    `retentions` the service's bookkeeping tables (common/retention.py)."""
    settings = app.config["SETTINGS"]
    db = app.extensions["sqlalchemy"]
    with app.app_context():
        metrics.serve(settings, [OutboxCollector(db.engine, model, settings.service)])
        relay = OutboxRelay(
            db,
            model,
            Publisher(settings.amqp_url, declare),
            service=settings.service,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
            linger=settings.relay_linger_ms / 1000,
            retentions=retentions,
            heartbeat_path=heartbeat_path,
        )
        relay.serve()
