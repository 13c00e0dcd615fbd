"""The shop's events: what the services tell each other, one Struct and one
EventType each (common/messaging/event.py says what an event is and how a type
evolves). Producers, consumers and tests all build and read them here; nobody
writes an event dict by hand. Who sends and who takes each: common/events/__init__.py.
"""

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from common.fields import MAX_ID
from common.messaging.event import Event, EventType

Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
Quantity = Annotated[int, Meta(ge=1)]
# An InventoryRejected's reason is for people; its shortages carry every line.
MAX_REASON = 2000


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
    """A line an order can't have: the one shape of a shortage, wherever it is
    found (placing an order, reserving it)."""

    product_id: Id
    requested: Quantity
    available: Annotated[int, Meta(ge=0)]  # 0 for a product that doesn't exist

    def __str__(self) -> str:
        return f"product {self.product_id}: {self.available} left, {self.requested} requested"


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
