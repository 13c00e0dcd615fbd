"""The consumer loop every event worker runs.

A handler is a function taking the decoded event. What it does decides the
message's fate:
- returns: the effect is committed, so the message is acked;
- raises InvalidEvent: retrying can't help, so the message is rejected straight
  to the dead-letter queue;
- raises anything else (database down, a bug): the message goes back to the queue
  after a growing pause; the quorum queue's delivery limit dead-letters it if that
  keeps happening, so nothing loops forever and nothing is dropped silently.
"""
import logging
import os
import signal
import threading
import time
from typing import Callable

from kombu import Connection, Queue
from kombu.mixins import ConsumerMixin

log = logging.getLogger(__name__)


class InvalidEvent(Exception):
    """The message can never be handled as it is (bad shape, unknown type)."""


class _Stopping(Exception):
    """Raised inside kombu's reconnect loop to leave it when asked to stop."""


class EventWorker(ConsumerMixin):
    def __init__(
        self,
        amqp_url: str,
        queue: Queue,
        handle: Callable[[dict], None],
        *,
        prefetch: int = 50,
        heartbeat_path: str | None = None,
    ):
        self.connection = Connection(amqp_url, heartbeat=30)
        self.queue = queue
        self.handle = handle
        self.prefetch = prefetch
        self.heartbeat_path = heartbeat_path
        self._wake = threading.Event()

    # -- lifecycle -------------------------------------------------------------

    def stop(self, *_signal_args) -> None:
        """SIGTERM/SIGINT: finish the message in hand, then leave the loop."""
        log.info("stopping after the current message")
        self.should_stop = True
        self._wake.set()

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        try:
            self.run()
        except _Stopping:
            pass
        finally:
            self.connection.release()
        log.info("stopped")

    # -- kombu hooks -----------------------------------------------------------

    def get_consumers(self, Consumer, channel):
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
        if self.heartbeat_path:
            with open(self.heartbeat_path, "a"):
                os.utime(self.heartbeat_path)

    def on_decode_error(self, message, exc):
        # kombu's default acks (drops) what it can't decode; keep it for inspection instead.
        log.error("undecodable message %s (%s); dead-lettering it", message.delivery_tag, exc)
        message.reject(requeue=False)

    # -- one message -----------------------------------------------------------

    def on_message(self, body, message):
        try:
            self.handle(body)
        except InvalidEvent as exc:
            log.error("invalid event %s: %s; dead-lettering it", _event_id(body), exc)
            message.reject(requeue=False)
        except Exception:  # noqa: BLE001 - any other failure goes back to the broker, bounded by its delivery limit
            attempt = int(message.headers.get("x-delivery-count") or 0) + 1
            delay = min(0.25 * 2**attempt, 5.0)
            log.exception("event %s failed (attempt %d); retrying in %.2fs", _event_id(body), attempt, delay)
            self._wake.wait(delay)
            message.requeue()
        else:
            message.ack()


def _event_id(body) -> str:
    return body.get("event_id", "?") if isinstance(body, dict) else "?"


def heartbeat_is_fresh(path: str, max_age: float) -> bool:
    try:
        return time.time() - os.path.getmtime(path) <= max_age
    except OSError:  # no heartbeat file yet: the worker never reached its loop
        return False
