"""The event consumer: one unit of work per batch of delivered events.

The consumer owns the transaction; handlers are plain domain functions, an
event and the rows the batch's lock loaded in, the events to announce out
(`reserve_stock(event, locked) -> [outcome]`), with no commit or broker code. For each batch of messages (up to
`batch_size`, or what arrived within `linger` of the first):

1. decode and validate each with its contract: what can't be (or what is older
   than the window in which duplicates are recognised) is dead-lettered at once,
   and the rest go on;
2. in one transaction: claim every event id (processed_events), lock what the
   batch will touch (`lock`, in a fixed order, so that two workers' batches queue
   up instead of deadlocking), call each new event's handler, write what they
   changed (`save`), add the events the handlers return to the outbox, and commit;
3. then ack the whole batch with one multiple-ack.

Nothing is acked before its effect is committed, and a handler can't commit
half a batch (a commit while handlers run raises). If the batch fails, it is
tried again one message per transaction, so that only the guilty message fails:
an InvalidEvent is dead-lettered; anything else (a bug, a constraint) is retried
later without holding up the messages behind it: a copy waits in the queue's
retry queue for a backoff and then comes back (topology.retry_queue), and after
DELIVERY_LIMIT retries it is dead-lettered, so nothing loops forever and nothing
is dropped silently. While the database is unreachable the batch is kept and tried
again in place with backoff, without spending deliveries, for up to
`transient_budget` seconds; then it is given back. A crash between the commit
and the ack redelivers the batch, and the claims absorb it.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from amqp.exceptions import AMQPError
from flask_sqlalchemy import SQLAlchemy
from kombu import Connection, Queue
from kombu.exceptions import KombuError
from kombu.mixins import ConsumerMixin
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import event as sqlalchemy_event

from common import context, metrics
from common.database import DATABASE_UNAVAILABLE
from common.messaging import outbox, topology
from common.messaging.event import Event, EventType, InvalidEvent
from common.messaging.idempotency import DUPLICATE_WINDOW, ProcessedEventMixin, claim, too_old
from common.messaging.outbox import OutboxMixin
from common.messaging.process import Loop, backoff

log = logging.getLogger(__name__)

# A handler takes an event, and what the batch's lock loaded and locked (None
# without a lock), and returns the events to announce. A save, if there is one,
# writes what the handlers changed in what was locked, before the commit (without
# one, what the lock loaded is ORM objects, which the commit flushes).
Handler = Callable[[Event, Any], list[Event]]
Lock = Callable[[list[Event]], Any]
Save = Callable[[Any], None]


@dataclass(frozen=True)
class Delivery:
    message: object  # kombu.Message
    event_type: EventType
    event: Event

    @property
    def event_id(self) -> str:
        return str(self.event.event_id)

    @property
    def request_id(self) -> str | None:
        return self.message.headers.get(context.AMQP_HEADER)


class _Stopping(Exception):
    """Raised inside kombu's reconnect loop to leave it when asked to stop."""


class _OutageOutlasted(Exception):
    """The database stayed unreachable for longer than the budget."""


class SubscriptionMismatch(ValueError):
    """A consumer's handlers and its queue's bindings name different event types."""


class HandlerCommitted(RuntimeError):
    """A handler committed: the consumer alone commits, once per batch."""


class EventConsumer(Loop, ConsumerMixin):
    def __init__(
        self,
        amqp_url: str,
        db: SQLAlchemy,
        queue: Queue,
        handlers: dict[EventType, Handler],
        *,
        processed: type[ProcessedEventMixin],
        outbox_model: type[OutboxMixin],
        lock: Lock | None = None,
        save: Save | None = None,
        batch_size: int = 100,
        prefetch: int = 200,
        linger: float = 0.01,
        transient_budget: float = 60.0,
        max_pause: float = 5.0,
        heartbeat_path: str | None = None,
    ):
        super().__init__(heartbeat_path)
        # Confirms: a retry's copy must be the broker's before its original is acked.
        self.connection = Connection(amqp_url, heartbeat=30, transport_options={"confirm_publish": True})
        self.db = db
        self.queue = queue
        self.retry_queue = topology.retry_queue(queue)
        self.handlers = {event_type.routing_key: (event_type, handler) for event_type, handler in handlers.items()}
        if set(self.handlers) != topology.routing_keys(queue):
            # Bound but not handled would be dead-lettered; handled but not bound, never delivered.
            raise SubscriptionMismatch(
                f"{queue.name} is bound to {sorted(topology.routing_keys(queue))}, "
                f"but the handlers take {sorted(self.handlers)}"
            )
        self.processed = processed
        self.outbox_model = outbox_model
        self.lock = lock
        self.save = save
        self.batch_size = batch_size
        self.prefetch = max(prefetch, batch_size)  # a batch can't be larger than what the broker lends
        self.linger = linger
        self.transient_budget = transient_budget
        self.max_pause = max_pause
        self._pending: list[Delivery] = []
        self._producer = None  # on the connection in use (consume)
        self._batch_deadline = 0.0
        self._handlers_running = False

    def serve(self) -> None:
        self.install_signal_handlers()
        try:
            self.run()
        finally:
            self.connection.release()
            self.close()
        log.info("stopped")

    def run(self, *args, **kwargs) -> None:
        sqlalchemy_event.listen(self.db.session, "before_commit", self._refuse_handler_commits)
        try:
            super().run(*args, **kwargs)
        except _Stopping:  # asked to stop while reconnecting
            pass
        finally:
            sqlalchemy_event.remove(self.db.session, "before_commit", self._refuse_handler_commits)

    # -- kombu -----------------------------------------------------------------------

    def get_consumers(self, Consumer, channel):  # noqa: N803 - kombu's name for it
        for queue in topology.declared_with([self.queue]):
            queue(channel).declare()
        # on_message: kombu hands over the message undecoded; the event type decodes
        # and checks it in one step (common/messaging/event.py).
        return [Consumer(queues=[self.queue], on_message=self.on_message, prefetch_count=self.prefetch)]

    def consume(self, limit=None, timeout=None, safety_interval=1, **kwargs):
        """kombu's loop, taking messages in batches: a batch is handled when it is
        full, or `linger` after its first message, whichever comes first."""
        self._pending = []  # a new channel: tags of an earlier one mean nothing
        with self.consumer_context(**kwargs) as (connection, _channel, _consumers):
            self._producer = connection.Producer()
            while not self.should_stop:
                self.on_iteration()
                if self._pending and (
                    len(self._pending) >= self.batch_size or time.monotonic() >= self._batch_deadline
                ):
                    self._flush()
                    continue
                wait = self._batch_deadline - time.monotonic() if self._pending else safety_interval
                try:
                    connection.drain_events(timeout=max(wait, 0.0001))
                except TimeoutError:
                    connection.heartbeat_check()
                    continue
                except OSError:
                    if self.should_stop:
                        break
                    raise
                yield
            self._flush()  # finish the batch in hand before stopping

    def on_connection_error(self, exc, interval):
        if self.should_stop:
            raise _Stopping()
        self.beat(problem="broker unreachable")
        log.warning("broker unreachable (%s); reconnecting in %.1fs", exc, interval)

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        log.info("consuming from %s, up to %d events per transaction", self.queue.name, self.batch_size)

    def on_iteration(self):
        # Runs at least once a second while connected: proof of life for healthchecks.
        self.beat()

    def on_message(self, message):
        try:
            event_type, event = self._decode(message)
        except InvalidEvent as exc:
            # Never acked and dropped, as kombu would do with what it can't decode:
            # the dead-letter queue keeps it for inspection.
            with context.bound(message.headers.get(context.AMQP_HEADER)):
                log.error("invalid message %s: %s; dead-lettering it", message.properties.get("message_id"), exc)
            self._dead_letter(message)
            return
        if not self._pending:
            self._batch_deadline = time.monotonic() + self.linger
        self._pending.append(Delivery(message, event_type, event))

    def _decode(self, message) -> tuple[EventType, Event]:
        # A retried message comes back from its retry queue under the queue's name.
        routing_key = message.headers.get(topology.ROUTING_KEY_HEADER) or message.delivery_info.get("routing_key", "")
        known = self.handlers.get(routing_key)
        if known is None:
            raise InvalidEvent(f"this consumer handles no {routing_key!r} events")
        if message.content_type != "application/json":
            raise InvalidEvent(f"a {message.content_type!r} body, not JSON")
        event = known[0].decode(message.body)
        if too_old(event.occurred_at):
            raise InvalidEvent(
                f"it occurred at {event.occurred_at:%Y-%m-%d %H:%M:%S%z}, before the last {DUPLICATE_WINDOW.days} days:"
                " whether its effect was applied already can no longer be told (see common/messaging/idempotency.py)"
            )
        return known[0], event

    # -- a batch -----------------------------------------------------------------------

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        metrics.CONSUMER_BATCH.labels(self.queue.name).observe(len(batch))
        try:
            self._apply_waiting_out_outages(batch)
        except _OutageOutlasted:
            for delivery in batch:
                self._give_back(delivery, f"the database was unreachable for {self.transient_budget:.0f}s")
            return
        except _Stopping:
            return  # unacked: the broker hands them out again after we disconnect
        except Exception as exc:  # noqa: BLE001 - find the guilty message, one at a time
            if len(batch) == 1:
                self._fail(batch[0], exc)
                return
            log.warning(
                "a batch of %d failed (%s: %s); retrying one event at a time", len(batch), type(exc).__name__, exc
            )
            for delivery in batch:
                self._flush_one(delivery)
            return
        batch[-1].message.ack(multiple=True)  # every delivery of the batch: their tags are the channel's oldest
        metrics.EVENTS_CONSUMED.labels(self.queue.name, "handled").inc(len(batch))

    def _flush_one(self, delivery: Delivery) -> None:
        try:
            self._apply_waiting_out_outages([delivery])
        except _OutageOutlasted:
            self._give_back(delivery, f"the database was unreachable for {self.transient_budget:.0f}s")
        except _Stopping:
            pass
        except Exception as exc:  # noqa: BLE001 - this one is the guilty one
            self._fail(delivery, exc)
        else:
            delivery.message.ack()
            metrics.EVENTS_CONSUMED.labels(self.queue.name, "handled").inc()

    def _apply_waiting_out_outages(self, batch: Sequence[Delivery]) -> None:
        outage_started, attempt = time.monotonic(), 0
        while True:
            try:
                return self._apply(batch)
            except DATABASE_UNAVAILABLE as exc:
                attempt += 1
                if self.should_stop:
                    raise _Stopping() from exc
                if time.monotonic() - outage_started >= self.transient_budget:
                    raise _OutageOutlasted() from exc
                delay = backoff(attempt, cap=self.max_pause)
                log.warning("database unreachable (%s); retrying %d events in %.1fs", exc, len(batch), delay)
                metrics.EVENTS_RETRIED.labels(self.queue.name).inc(len(batch))
                self.beat(problem="database unreachable")
                self.pause(delay)

    def _apply(self, batch: Sequence[Delivery]) -> None:
        """The unit of work: claims, locks, effects and outgoing events, one commit."""
        session = self.db.session
        try:
            fresh = claim(session, self.processed, [delivery.event_id for delivery in batch])
            todo = []
            for delivery in batch:
                if delivery.event_id in fresh:
                    todo.append(delivery)
                    fresh.discard(delivery.event_id)  # a second copy in the same batch is a duplicate too
                else:
                    with context.bound(delivery.request_id):
                        log.info("event %s handled before; nothing to do", delivery.event_id)
            outgoing = []
            self._handlers_running = True
            try:
                locked = self.lock([delivery.event for delivery in todo]) if todo and self.lock else None
                for delivery in todo:
                    with context.bound(delivery.request_id):
                        _, handle = self.handlers[delivery.event_type.routing_key]
                        outgoing += [outbox.message(event) for event in handle(delivery.event, locked)]
                if locked is not None and self.save:
                    self.save(locked)
            finally:
                self._handlers_running = False
            outbox.add(session, self.outbox_model, outgoing)
            session.commit()  # NOTIFYs the relays if it added to the outbox
        finally:
            # Whatever happened, no transaction is left open for the next batch and
            # the connection goes back to the pool.
            self.db.session.remove()

    def _refuse_handler_commits(self, session):
        if self._handlers_running:
            raise HandlerCommitted("handlers must not commit: the consumer commits the whole batch")

    # -- settling one message ----------------------------------------------------------

    def _fail(self, delivery: Delivery, exc: Exception) -> None:
        with context.bound(delivery.request_id):
            if isinstance(exc, InvalidEvent):
                log.error("invalid event %s: %s; dead-lettering it", delivery.event_id, exc)
                self._dead_letter(delivery.message)
                return
            log.error("event %s failed", delivery.event_id, exc_info=exc)
            self._give_back(delivery, "handler failed")

    def _dead_letter(self, message) -> None:
        message.reject(requeue=False)
        metrics.EVENTS_CONSUMED.labels(self.queue.name, "dead_lettered").inc()

    def _give_back(self, delivery: Delivery, why: str) -> None:
        """Retry it later, without holding up the messages behind it: a copy waits
        in the retry queue for the backoff, then comes back to this queue; the
        original is acked once the broker has confirmed the copy (a crash between
        the two makes a duplicate, which the claims absorb). After DELIVERY_LIMIT
        retries it is dead-lettered instead."""
        message = delivery.message
        retries = int(message.headers.get(topology.RETRIES_HEADER) or 0) + 1
        with context.bound(delivery.request_id):
            if retries > topology.DELIVERY_LIMIT:
                log.error("event %s: %s, %d times; dead-lettering it", delivery.event_id, why, retries)
                self._dead_letter(message)
                return
            delay = backoff(retries, cap=self.max_pause)
            log.error(
                "event %s: %s (retry %d of %d); retrying in %.1fs",
                delivery.event_id,
                why,
                retries,
                topology.DELIVERY_LIMIT,
                delay,
            )
        # The broker's own headers stay behind: the copy is a new message to it.
        broker_headers = ("x-death", "x-delivery-count")
        headers = {name: value for name, value in message.headers.items() if name not in broker_headers}
        self._producer.publish(
            message.body,
            exchange="",
            routing_key=self.retry_queue.name,
            headers={
                **headers,
                topology.RETRIES_HEADER: retries,
                topology.ROUTING_KEY_HEADER: delivery.event_type.routing_key,
            },
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            message_id=message.properties.get("message_id"),
            delivery_mode="persistent",
            expiration=delay,
        )
        message.ack()
        metrics.EVENTS_CONSUMED.labels(self.queue.name, "requeued").inc()


class QueueDepthCollector:
    """Queue depths and consumer counts, read from the broker when metrics are scraped.

    Each worker reports every queue, not just its own: a queue whose only
    consumer is dead still shows, with 0 consumers, in the other's metrics."""

    def __init__(self, amqp_url: str, queue_list: list[Queue]):
        self.amqp_url = amqp_url
        self.queue_list = queue_list

    def collect(self):
        depth = GaugeMetricFamily("shop_queue_messages", "Messages waiting in a queue", labels=["queue"])
        consumers = GaugeMetricFamily("shop_queue_consumers", "Consumers attached to a queue", labels=["queue"])
        try:
            with Connection(self.amqp_url, connect_timeout=2) as connection:
                for queue in self.queue_list:
                    declared = queue(connection.default_channel).queue_declare(passive=True)
                    depth.add_metric([queue.name], declared.message_count)
                    consumers.add_metric([queue.name], declared.consumer_count)
        except (KombuError, AMQPError, OSError):  # broker away or queue missing: report nothing
            return
        yield depth
        yield consumers


def consumer_for(
    app,
    queue: Queue,
    handlers: dict[EventType, Handler],
    *,
    processed: type[ProcessedEventMixin],
    outbox_model: type[OutboxMixin],
    lock: Lock | None = None,
    save: Save | None = None,
    heartbeat_path: str | None = None,
) -> EventConsumer:
    """A service's consumer, as its settings say (broker, batch size, prefetch)."""
    settings = app.config["SETTINGS"]
    return EventConsumer(
        settings.amqp_url,
        app.extensions["sqlalchemy"],
        queue,
        handlers,
        processed=processed,
        outbox_model=outbox_model,
        lock=lock,
        save=save,
        batch_size=settings.worker_batch_size,
        prefetch=settings.worker_prefetch,
        linger=settings.worker_linger_ms / 1000,
        heartbeat_path=heartbeat_path,
    )


def serve_consumer(app, consumer: EventConsumer, reported: list[Queue]) -> None:
    """The body of a service's worker process; handlers run inside the app's
    context. Its /metrics has the depth and consumers of each `reported` queue."""
    settings = app.config["SETTINGS"]
    metrics.serve(settings, [QueueDepthCollector(settings.amqp_url, reported)])
    with app.app_context():
        consumer.serve()
