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
from kombu import Connection, Queue
from kombu.mixins import ConsumerMixin

from common.daemon import GracefulLoop, backoff
from common.db import DATABASE_UNAVAILABLE
from common import queues

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
        except _Stopping:
            pass
        finally:
            self.connection.release()
        log.info("stopped")

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

    # -- one message -----------------------------------------------------------

    def on_message(self, body, message):
        outage_started, attempt = time.monotonic(), 0
        while True:
            try:
                self.handle(body)
            except self.transient as exc:
                attempt += 1
                if self.should_stop:
                    return  # unacked: the broker hands it out again after we disconnect
                if time.monotonic() - outage_started < self.transient_budget:
                    delay = backoff(attempt, cap=self.max_pause)
                    log.warning("event %s: dependency unreachable (%s); retrying in %.1fs", _event_id(body), exc, delay)
                    self.pause(delay)
                    self.beat()
                    continue
                self._give_back(body, message, f"dependency unreachable for {self.transient_budget:.0f}s")
            except InvalidEvent as exc:
                log.error("invalid event %s: %s; dead-lettering it", _event_id(body), exc)
                message.reject(requeue=False)
            except Exception:  # noqa: BLE001 - back to the broker, bounded by its delivery limit
                log.exception("event %s failed", _event_id(body))
                self._give_back(body, message, "handler failed")
            else:
                message.ack()
            return

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
    """A service's worker: its app's broker, database outages waited out."""
    return EventWorker(
        app.config["AMQP_URL"],
        queue,
        handle,
        transient=DATABASE_UNAVAILABLE,
        prefetch=app.config["WORKER_PREFETCH"],
        heartbeat_path=heartbeat_path,
    )


def serve_worker(app, queue: Queue, handle: Callable[[dict], None], heartbeat_path: str) -> None:
    """The body of a service's worker process; handlers run inside the app's context."""
    with app.app_context():
        worker_for(app, queue, handle, heartbeat_path).serve()
