"""The consumer loop every event worker runs.

A handler is a function taking the decoded event. What it raises decides the
message's fate:
- nothing: the effect is committed, so the message is acked;
- InvalidEvent: retrying can't help, so the message goes straight to the
  dead-letter queue;
- one of the worker's `transient` errors (the database is unreachable): the
  message is kept and tried again with backoff, so a short outage costs nothing;
  once the outage outlasts `transient_budget` seconds it is treated as below;
- anything else (a bug, a constraint): the message goes back to the queue after a
  pause; the quorum queue's delivery limit dead-letters it if that keeps
  happening, so nothing loops forever and nothing is dropped silently.
"""
import logging
import time
from typing import Callable

import marshmallow as ma
from amqp.exceptions import AMQPError
from kombu import Connection, Queue
from kombu.exceptions import KombuError
from kombu.mixins import ConsumerMixin
from prometheus_client.core import GaugeMetricFamily

from common import context, metrics, queues
from common.daemon import GracefulLoop, backoff
from common.db import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)


class InvalidEvent(Exception):
    """The message can never be handled as it is (bad shape, unknown order)."""


def load_event(schema, body) -> dict:
    """The event as `schema` loads it; InvalidEvent (so: dead-lettered) if it doesn't fit."""
    try:
        return schema.load(body)
    except ma.ValidationError as exc:
        raise InvalidEvent(exc.messages) from None


class _Stopping(Exception):
    """Raised inside kombu's reconnect loop to leave it when asked to stop."""


class EventWorker(GracefulLoop, ConsumerMixin):
    def __init__(
        self,
        amqp_url: str,
        queue: Queue,
        handle: Callable[[dict], None],
        *,
        transient: tuple[type[Exception], ...] = (),
        transient_budget: float = 60.0,
        max_pause: float = 5.0,
        prefetch: int = 50,
        heartbeat_path: str | None = None,
    ):
        super().__init__(heartbeat_path)
        self.connection = Connection(amqp_url, heartbeat=30)
        self.queue = queue
        self.handle = handle
        self.transient = transient
        self.transient_budget = transient_budget
        self.max_pause = max_pause
        self.prefetch = prefetch

    def serve(self) -> None:
        self.install_signal_handlers()
        try:
            self.run()
        finally:
            self.connection.release()
        log.info("stopped")

    def run(self, *args, **kwargs) -> None:
        try:
            super().run(*args, **kwargs)
        except _Stopping:  # asked to stop while reconnecting
            pass

    # -- kombu hooks -----------------------------------------------------------

    def get_consumers(self, Consumer, channel):
        for queue in queues.DECLARED_QUEUES:
            queue(channel).declare()
        return [
            Consumer(
                queues=[self.queue],
                callbacks=[self.on_message],
                accept=["json"],
                prefetch_count=self.prefetch,
            )
        ]

    def on_connection_error(self, exc, interval):
        if self.should_stop:
            raise _Stopping()
        self.beat(problem="broker unreachable")
        log.warning("broker unreachable (%s); reconnecting in %.1fs", exc, interval)

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        log.info("consuming from %s", self.queue.name)

    def on_iteration(self):
        # Runs at least once a second while connected: proof of life for healthchecks.
        self.beat()

    def on_decode_error(self, message, exc):
        # kombu's default acks (drops) what it can't decode; keep it for inspection instead.
        log.error("undecodable message %s (%s); dead-lettering it", message.delivery_tag, exc)
        message.reject(requeue=False)
        metrics.EVENTS_CONSUMED.labels(self.queue.name, "dead_lettered").inc()

    # -- one message -----------------------------------------------------------

    def on_message(self, body, message):
        # Handled, and logged, under the request id that caused the event.
        with context.bound(message.headers.get(context.AMQP_HEADER)):
            outcome = self._handle(body, message)
        metrics.EVENTS_CONSUMED.labels(self.queue.name, outcome).inc()

    def _handle(self, body, message) -> str:
        outage_started, attempt = time.monotonic(), 0
        while True:
            try:
                self.handle(body)
            except self.transient as exc:
                attempt += 1
                if self.should_stop:
                    return "requeued"  # unacked: the broker hands it out again after we disconnect
                if time.monotonic() - outage_started < self.transient_budget:
                    delay = backoff(attempt, cap=self.max_pause)
                    log.warning("event %s: dependency unreachable (%s); retrying in %.1fs", _event_id(body), exc, delay)
                    metrics.EVENTS_RETRIED.labels(self.queue.name).inc()
                    self.beat(problem="database unreachable")
                    self.pause(delay)
                    continue
                self._give_back(body, message, f"dependency unreachable for {self.transient_budget:.0f}s")
                return "requeued"
            except InvalidEvent as exc:
                log.error("invalid event %s: %s; dead-lettering it", _event_id(body), exc)
                message.reject(requeue=False)
                return "dead_lettered"
            except Exception:  # noqa: BLE001 - back to the broker, bounded by its delivery limit
                log.exception("event %s failed", _event_id(body))
                self._give_back(body, message, "handler failed")
                return "requeued"
            message.ack()
            return "handled"

    def _give_back(self, body, message, why: str) -> None:
        """Requeue after a pause; each return counts against the delivery limit."""
        delivery = int(message.headers.get("x-delivery-count") or 0) + 1
        delay = backoff(delivery, cap=self.max_pause)
        log.error(
            "event %s: %s (delivery %d; dead-lettered after %d); requeueing in %.1fs",
            _event_id(body), why, delivery, queues.DELIVERY_LIMIT, delay,
        )
        self.pause(delay)
        message.requeue()


def _event_id(body) -> str:
    return body.get("event_id", "?") if isinstance(body, dict) else "?"


def worker_for(app, queue: Queue, handle: Callable[[dict], None], heartbeat_path: str | None = None) -> EventWorker:
    """A service's worker: its app's broker, database outages waited out, and a
    fresh database session per message."""
    db = app.extensions["sqlalchemy"]

    def handle_in_own_session(event: dict) -> None:
        try:
            handle(event)
        finally:
            # A failure can't leave a broken transaction behind for the next message,
            # and the connection goes back to the pool.
            db.session.remove()

    return EventWorker(
        app.config["AMQP_URL"],
        queue,
        handle_in_own_session,
        transient=DATABASE_UNAVAILABLE,
        prefetch=app.config["WORKER_PREFETCH"],
        heartbeat_path=heartbeat_path,
    )


class QueueDepthCollector:
    """Queue depths, read from the broker when metrics are scraped."""

    def __init__(self, amqp_url: str, queue_list: list[Queue]):
        self.amqp_url = amqp_url
        self.queue_list = queue_list

    def collect(self):
        depth = GaugeMetricFamily("shop_queue_messages", "Messages waiting in a queue", labels=["queue"])
        try:
            with Connection(self.amqp_url, connect_timeout=2) as connection:
                for queue in self.queue_list:
                    ready = queue(connection.default_channel).queue_declare(passive=True).message_count
                    depth.add_metric([queue.name], ready)
        except (KombuError, AMQPError, OSError):  # broker away or queue missing: report nothing
            return
        yield depth


def serve_worker(app, queue: Queue, handle: Callable[[dict], None], heartbeat_path: str) -> None:
    """The body of a service's worker process; handlers run inside the app's context."""
    metrics.serve([QueueDepthCollector(app.config["AMQP_URL"], [queue, queues.DEAD_LETTER_QUEUE])])
    with app.app_context():
        worker_for(app, queue, handle, heartbeat_path).serve()
