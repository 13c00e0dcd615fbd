"""The event envelope and the publisher.

Every event is a JSON object with event_id, type and occurred_at, plus the fields
of its type. Messages are persistent, and publishing waits for the broker's
confirm, so a publish that returns has reached the broker's disk.
"""
import logging
import threading
import uuid
from datetime import datetime, timezone

import marshmallow as ma
from kombu import Connection, Queue
from kombu.pools import producers

from common import queues
from common.fields import MAX_ID, StrictInteger

log = logging.getLogger(__name__)

RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}


def new_event(event_type: str, **fields) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": datetime.now(timezone.utc).isoformat(),
        **fields,
    }


class EventLineSchema(ma.Schema):
    product_id = StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    quantity = StrictInteger(required=True, validate=ma.validate.Range(min=1))


class OrderCreatedSchema(ma.Schema):
    """What products-worker accepts; anything else is dead-lettered, not guessed at."""

    event_id = ma.fields.UUID(required=True)
    type = ma.fields.String(required=True, validate=ma.validate.Equal(queues.ORDER_CREATED))
    occurred_at = ma.fields.AwareDateTime(required=True)
    order_id = StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    user_id = StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    items = ma.fields.List(
        ma.fields.Nested(EventLineSchema), required=True, validate=ma.validate.Length(min=1)
    )


order_created_schema = OrderCreatedSchema()


class Publisher:
    """Publishes events with confirms, from any thread of the process.

    The connection is opened on first use, not at construction: Gunicorn forks
    workers after the app is built, and a socket must not be shared across a fork.
    """

    def __init__(self, amqp_url: str):
        self._url = amqp_url
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def _get_connection(self) -> Connection:
        with self._lock:
            if self._connection is None:
                self._connection = Connection(
                    self._url, transport_options={"confirm_publish": True}
                )
            return self._connection

    def publish(self, event: dict, routing_key: str, declare: list[Queue]) -> None:
        # Declaring the consumers' queues too means an event published before any
        # consumer ever started is queued, not dropped by an exchange with no bindings.
        with producers[self._get_connection()].acquire(block=True, timeout=5) as producer:
            producer.publish(
                event,
                exchange=queues.EVENTS,
                routing_key=routing_key,
                serializer="json",
                delivery_mode="persistent",
                message_id=event["event_id"],
                type=event["type"],
                declare=declare,
                retry=True,
                retry_policy=RETRY_POLICY,
            )
        log.info("published %s %s", event["type"], event["event_id"])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.release()
                self._connection = None
