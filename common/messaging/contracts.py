"""The events the services exchange: the contract between producer and consumer.

Each event type has its routing key (which is also its `type`), a typed schema
per `version`, and a constructor that checks the fields against it, so no
producer can send what its consumer would refuse. Producers, consumers and
tests all use them; nobody writes an event dict by hand.

    order.created       orders → products   order_id, user_id, items [{product_id, quantity}]
    order.cancelled     orders → products   order_id, user_id, items [{product_id, quantity}]
    inventory.reserved  products → orders   order_id
    inventory.rejected  products → orders   order_id, reason, shortages [{product_id, requested, available}]

Every event is a JSON object: event_id, type, version and occurred_at, then the
fields of its type.

The schemas are msgspec Structs, not marshmallow schemas as the HTTP APIs use:
a worker decodes and checks every event it takes and builds every event it
announces, and marshmallow spent ~0.7 ms of CPU doing that per event here,
msgspec a few microseconds. Types are strict: an id given as a string, a
boolean or a float is refused.

How an event type evolves without breaking a consumer that is one release behind:
- Adding a field is compatible and keeps the version. Consumers ignore fields
  they don't know (Structs skip unknown keys), so an older consumer accepts the
  newer event; a newer consumer must give the field a default until every
  producer sends it.
- Anything else (removing, renaming or retyping a field, changing what one
  means) is a new version. Consumers are upgraded first: the new one accepts both
  versions (its EventType gets a Struct for each; `version` stays the old one,
  which producers write). Only then do producers switch (`version` moves on). An
  event of a version a consumer doesn't know is refused (dead-lettered, so
  `scripts/dlq requeue` can replay it once the consumer is upgraded), never
  guessed at.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from common.fields import MAX_ID


class InvalidEvent(Exception):
    """The message can never be handled as it is: bad shape, unknown type or
    version, an order that doesn't exist. It goes to the dead-letter queue."""


Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
Quantity = Annotated[int, Meta(ge=1)]
# An InventoryRejected's reason is for people; its shortages carry every line.
MAX_REASON = 2000


class Event(Struct, kw_only=True, frozen=True):
    """What every event carries. Unknown fields are ignored (forward compatible)."""

    event_id: uuid.UUID
    type: str
    version: int
    occurred_at: Annotated[datetime, Meta(tz=True)]


class OrderLine(Struct, frozen=True):
    product_id: Id
    quantity: Quantity


class OrderLines(Event, kw_only=True, frozen=True):
    """An event about an order as placed: its buyer and its lines."""

    order_id: Id
    user_id: Id
    items: Annotated[list[OrderLine], Meta(min_length=1)]

    def __post_init__(self):
        if len({line.product_id for line in self.items}) != len(self.items):
            raise ValueError("each product appears on one line only")


class OrderCreated(OrderLines, kw_only=True, frozen=True):
    pass


class OrderCancelled(OrderLines, kw_only=True, frozen=True):
    """The buyer cancelled the order: whatever stock it holds goes back. It names
    the lines as placed, so products can lock them before it looks at what it
    took (its own record of the reservation decides what is given back)."""

    # A cancellation is the buyer's word, not an inventory outcome: one that
    # carries a reason or shortages mixes up two events.
    reason: UnsetType = UNSET
    shortages: UnsetType = UNSET


class Shortage(Struct, frozen=True):
    product_id: Id
    requested: Quantity
    available: Annotated[int, Meta(ge=0)]


class InventoryReserved(Event, kw_only=True, frozen=True):
    order_id: Id
    # Ignoring unknown fields must not let a contradiction through: a reservation
    # that names a reason or a shortage says two things at once. (UNSET can't be
    # given in JSON: either field, with any value, is refused.)
    reason: UnsetType = UNSET
    shortages: UnsetType = UNSET


class InventoryRejected(Event, kw_only=True, frozen=True):
    order_id: Id
    reason: Annotated[str, Meta(min_length=1, max_length=MAX_REASON)]
    shortages: Annotated[list[Shortage], Meta(min_length=1)]


class _Envelope(Struct):
    """Just enough of an event to know which schema reads the rest."""

    type: str = ""
    version: int = 0


@dataclass(frozen=True)
class EventType:
    routing_key: str
    version: int  # what producers write
    structs: dict[int, type[Event]] = field(repr=False, compare=False)  # every version consumers accept

    def new(self, **fields) -> Event:
        """A new event of this type with these fields, checked against its schema:
        a producer's mistake fails here, at its source, not in the consumer."""
        event = {
            "event_id": str(uuid.uuid4()),
            "type": self.routing_key,
            "version": self.version,
            "occurred_at": datetime.now(UTC),
            **fields,
        }
        try:
            return msgspec.convert(event, self.structs[self.version])
        except msgspec.ValidationError as exc:
            raise ValueError(f"not a valid {self.routing_key} event: {exc}") from None

    def decode(self, raw: bytes) -> Event:
        """A received message body as this type's schema reads it; InvalidEvent if it
        isn't one (not JSON, another type, a version not known, a field wrong)."""
        try:
            envelope = msgspec.json.decode(raw, type=_Envelope)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidEvent(f"not an event: {exc}") from None
        if envelope.type != self.routing_key:
            raise InvalidEvent(f"routed as {self.routing_key!r} but its type is {envelope.type!r}")
        struct = self.structs.get(envelope.version)
        if struct is None:
            raise InvalidEvent(f"{self.routing_key} version {envelope.version} is not one of {sorted(self.structs)}")
        try:
            return msgspec.json.decode(raw, type=struct)
        except msgspec.ValidationError as exc:
            raise InvalidEvent(str(exc)) from None


def payload(event: Event) -> dict:
    """The event as plain JSON data: what the outbox stores and the relay sends."""
    return msgspec.to_builtins(event)


# Version 2 has version 1's fields, but promises what the orders it announces
# rely on: they can be cancelled, so their consumer must record what it takes
# for each (products' reservations; products/inventory.py). A products-worker of
# a release before that record existed knows only version 1 and so refuses these
# orders (to the dead letters) rather than take stock no cancel could give back.
# Version 1 orders, placed before that release, are not cancellable
# (orders/migrations/versions/d7a3b5c9e2f4_cancelling_and_idempotency_keys.py).
ORDER_CREATED = EventType("order.created", 2, {1: OrderCreated, 2: OrderCreated})
ORDER_CANCELLED = EventType("order.cancelled", 1, {1: OrderCancelled})
INVENTORY_RESERVED = EventType("inventory.reserved", 1, {1: InventoryReserved})
INVENTORY_REJECTED = EventType("inventory.rejected", 1, {1: InventoryRejected})
