"""The events, their envelope, and the publisher.

Every event is a JSON object with event_id, type and occurred_at, plus the fields
of its type. The schemas here are the contract between services: a consumer
loads what it receives with them and dead-letters what doesn't fit.

    order.created       orders → products   order_id, user_id, items [{product_id, quantity}]
    inventory.reserved  products → orders   order_id
    inventory.rejected  products → orders   order_id, reason, shortages [{product_id, requested, available}]
"""
import logging
import threading
import uuid
from datetime import datetime, timezone

import marshmallow as ma
from kombu import Connection
from kombu.pools import producers

from common import queues
from common.fields import MAX_ID, StrictInteger

log = logging.getLogger(__name__)

# Retries inside one publish; the outbox relay retries whole publishes after that.
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def new_event(event_type: str, **fields) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": datetime.now(timezone.utc).isoformat(),
        **fields,
    }


def Id() -> StrictInteger:  # noqa: N802 - reads like the field class it returns
    return StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))


class EventSchema(ma.Schema):
    event_id = ma.fields.UUID(required=True)
    type = ma.fields.String(required=True)
    occurred_at = ma.fields.AwareDateTime(required=True)


class OrderLineSchema(ma.Schema):
    product_id = Id()
    quantity = StrictInteger(required=True, validate=ma.validate.Range(min=1))


class OrderCreatedSchema(EventSchema):
    type = ma.fields.String(required=True, validate=ma.validate.Equal(queues.ORDER_CREATED))
    order_id = Id()
    user_id = Id()
    items = ma.fields.List(ma.fields.Nested(OrderLineSchema), required=True, validate=ma.validate.Length(min=1))


class ShortageSchema(ma.Schema):
    product_id = Id()
    requested = StrictInteger(required=True)
    available = StrictInteger(required=True)


class InventoryResultSchema(EventSchema):
    type = ma.fields.String(
        required=True, validate=ma.validate.OneOf([queues.INVENTORY_RESERVED, queues.INVENTORY_REJECTED])
    )
    order_id = Id()
    reason = ma.fields.String(load_default=None)
    shortages = ma.fields.List(ma.fields.Nested(ShortageSchema), load_default=list)


order_created_schema = OrderCreatedSchema()
inventory_result_schema = InventoryResultSchema()


class Publisher:
    """Publishes events with confirms, from any thread of the process.

    Messages are persistent and the broker confirms each one, so a publish that
    returns has reached the broker. The connection is opened on first use, not at
    construction: a socket must not be shared across a fork.
    """

    def __init__(self, amqp_url: str):
        self._url = amqp_url
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def _get_connection(self) -> Connection:
        with self._lock:
            if self._connection is None:
                self._connection = Connection(self._url, transport_options={"confirm_publish": True})
            return self._connection

    def publish(self, event: dict, routing_key: str, headers: dict | None = None) -> None:
        with producers[self._get_connection()].acquire(block=True, timeout=5) as producer:
            producer.publish(
                event,
                exchange=queues.EVENTS,
                routing_key=routing_key,
                serializer="json",
                delivery_mode="persistent",
                message_id=event["event_id"],
                type=event["type"],
                headers=headers or {},
                declare=queues.DECLARED_QUEUES,
                retry=True,
                retry_policy=RETRY_POLICY,
            )

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.release()
                self._connection = None
