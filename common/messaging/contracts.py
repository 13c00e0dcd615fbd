"""The events the services exchange: the contract between producer and consumer.

Each event type has its routing key (which is also its `type`), a schema with a
`version`, and a constructor that builds the payload through that schema, so no
producer can send what its consumer would refuse. Producers, consumers and
tests all use them; nobody writes an event dict by hand.

    order.created       orders → products   order_id, user_id, items [{product_id, quantity}]
    order.cancelled     orders → products   order_id, user_id, items [{product_id, quantity}]
    inventory.reserved  products → orders   order_id
    inventory.rejected  products → orders   order_id, reason, shortages [{product_id, requested, available}]

Every event is a JSON object: event_id, type, version and occurred_at, then the
fields of its type.

How an event type evolves without breaking a consumer that is one release behind:
- Adding a field is compatible and keeps the version. Consumers ignore fields
  they don't know (the schemas EXCLUDE unknown keys), so an older consumer
  accepts the newer event; a newer consumer must treat the field as optional
  until every producer sends it (load_default).
- Anything else (removing, renaming or retyping a field, changing what one
  means) is a new version. Consumers are upgraded first: the new one accepts both
  versions (its EventType gets a schema for each; `version` stays the old one,
  which producers write). Only then do producers switch (`version` moves on). An
  event of a version a consumer doesn't know is refused (dead-lettered, so
  `scripts/dlq requeue` can replay it once the consumer is upgraded), never
  guessed at.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import marshmallow as ma

from common.fields import MAX_ID, StrictInteger


class InvalidEvent(Exception):
    """The message can never be handled as it is: bad shape, unknown type or
    version, an order that doesn't exist. It goes to the dead-letter queue."""


def _id() -> StrictInteger:
    return StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))


class EventSchema(ma.Schema):
    """What every event carries."""

    class Meta:
        # Forward compatible: a newer producer's added fields are ignored, not refused.
        unknown = ma.EXCLUDE

    event_id = ma.fields.UUID(required=True)
    type = ma.fields.String(required=True)
    version = StrictInteger(required=True)
    occurred_at = ma.fields.AwareDateTime(required=True)


class OrderLineSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    product_id = _id()
    quantity = StrictInteger(required=True, validate=ma.validate.Range(min=1))


class OrderLinesSchema(EventSchema):
    """An event about an order as placed: its buyer and its lines."""

    order_id = _id()
    user_id = _id()
    items = ma.fields.List(ma.fields.Nested(OrderLineSchema), required=True, validate=ma.validate.Length(min=1))

    @ma.validates("items")
    def one_line_per_product(self, items, **kwargs):
        ids = [line["product_id"] for line in items]
        if len(ids) != len(set(ids)):
            raise ma.ValidationError("Each product appears on one line only.")


class OrderCreatedSchema(OrderLinesSchema):
    pass


class OrderCancelledSchema(OrderLinesSchema):
    """The buyer cancelled the order: whatever stock it holds goes back. It names
    the lines as placed, so products can lock them before it looks at what it
    took (its own record of the reservation decides what is given back)."""

    @ma.validates_schema(pass_original=True)
    def not_an_outcome(self, data, original, **kwargs):
        # A cancellation is the buyer's word, not an inventory outcome: one that
        # carries a reason or shortages mixes up two events.
        if isinstance(original, dict) and ({"reason", "shortages"} & original.keys()):
            raise ma.ValidationError("A cancellation has no reason or shortages.")


class ShortageSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    product_id = _id()
    requested = StrictInteger(required=True, validate=ma.validate.Range(min=1))
    available = StrictInteger(required=True, validate=ma.validate.Range(min=0))


class InventoryReservedSchema(EventSchema):
    order_id = _id()

    @ma.validates_schema(pass_original=True)
    def not_a_rejection(self, data, original, **kwargs):
        # Ignoring unknown fields must not let a contradiction through: a
        # reservation that names a shortage says two things at once.
        if isinstance(original, dict) and ({"reason", "shortages"} & original.keys()):
            raise ma.ValidationError("A reservation has no reason or shortages.")


class InventoryRejectedSchema(EventSchema):
    order_id = _id()
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))
    shortages = ma.fields.List(ma.fields.Nested(ShortageSchema), required=True, validate=ma.validate.Length(min=1))


@dataclass(frozen=True)
class EventType:
    routing_key: str
    version: int  # what producers write
    schemas: dict[int, ma.Schema] = field(repr=False, compare=False)  # every version consumers accept

    @property
    def schema(self) -> ma.Schema:
        return self.schemas[self.version]

    def new(self, **fields) -> dict:
        """A new event of this type with these fields, checked by the schema:
        a producer's mistake fails here, at its source, not in the consumer."""
        event = {
            "event_id": str(uuid.uuid4()),
            "type": self.routing_key,
            "version": self.version,
            "occurred_at": datetime.now(UTC).isoformat(),
            **fields,
        }
        errors = self.schema.validate(event)
        if errors:
            raise ValueError(f"not a valid {self.routing_key} event: {errors}")
        return event

    def load(self, body) -> dict:
        """The event as this type's schema loads it; InvalidEvent if it doesn't fit."""
        if not isinstance(body, dict):
            raise InvalidEvent(f"a {self.routing_key} event must be a JSON object")
        schema = self.schemas.get(body.get("version"))
        if schema is None:
            raise InvalidEvent(
                f"{self.routing_key} version {body.get('version')!r} is not one of {sorted(self.schemas)}"
            )
        try:
            return schema.load(body)
        except ma.ValidationError as exc:
            raise InvalidEvent(exc.messages) from None


ORDER_CREATED = EventType("order.created", 1, {1: OrderCreatedSchema()})
ORDER_CANCELLED = EventType("order.cancelled", 1, {1: OrderCancelledSchema()})
INVENTORY_RESERVED = EventType("inventory.reserved", 1, {1: InventoryReservedSchema()})
INVENTORY_REJECTED = EventType("inventory.rejected", 1, {1: InventoryRejectedSchema()})

BY_ROUTING_KEY = {
    event_type.routing_key: event_type
    for event_type in (ORDER_CREATED, ORDER_CANCELLED, INVENTORY_RESERVED, INVENTORY_REJECTED)
}


def decode(body, routing_key: str) -> tuple[EventType, dict]:
    """The event type and the loaded event of a received message; InvalidEvent if
    it isn't one we know, or claims another type than it was routed as."""
    event_type = BY_ROUTING_KEY.get(routing_key)
    if event_type is None:
        raise InvalidEvent(f"no event type is routed as {routing_key!r}")
    claimed = body.get("type") if isinstance(body, dict) else None
    if claimed != routing_key:
        raise InvalidEvent(f"routed as {routing_key!r} but its type is {claimed!r}")
    return event_type, event_type.load(body)
