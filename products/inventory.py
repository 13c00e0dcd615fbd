"""A product's stock rules, all of them: taking stock for an order, giving it
back when the order is cancelled, and restocking.

products-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py): they change rows and return the events to
announce; the consumer commits and acks.

A batch's products and reservations are loaded and locked once, in id order
(lock_events), and each event is then decided in memory, against the stock as
the batch's earlier events left it; then Locked.save writes every changed row
in three set-based statements. A batch of a hundred orders costs a few round
trips, not two or three per order. This is the system's hottest loop, so it
works on plain values with prepared Core statements, not ORM objects: the ORM's
identity map and unit of work were half of products-worker's CPU
(docs/benchmarks.md).

Why a cancellation can never lose or double stock
-------------------------------------------------
The saga is asynchronous: the buyer may cancel while the order's OrderCreated is
still queued, and OrderCancelled may even be delivered first (another relay, a
retry, a requeue). So products keeps its own record per order, the
`reservations` row, written in the same transaction as the stock change it
describes (and as the event's claim in processed_events). Whichever of the two
events is handled second finds what the first did:

    OrderCreated first:   RESERVED (stock taken)  → OrderCancelled gives those
                          lines back: RELEASED
                          REJECTED (nothing taken) → OrderCancelled: nothing to give back
    OrderCancelled first: no row → CANCELLED, a tombstone → OrderCreated takes nothing

and a row that is RELEASED or CANCELLED already makes any later event a no-op,
so stock is given back at most once and only if it was taken. Two workers can't
both find "no row": lock_events locks the batch's products and then its
reservations in id order, and a second INSERT of the same order waits on the
primary key and then fails, rolling its whole transaction back (the consumer
then retries one event at a time and finds the row).
"""

import logging
from dataclasses import dataclass, field

import msgspec
from sqlalchemy import BigInteger, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from common.database import any_id
from common.events import contracts
from products.models import CANCELLED, REJECTED, RELEASED, RESERVED, Product, Reservation, db

log = logging.getLogger(__name__)


def _reason(shortages: list[contracts.Shortage]) -> str:
    """One sentence naming the short lines, within the contract's bound on a reason
    (an order of 100 short lines would need about 6,000 characters): as many as
    fit, then how many more. The event's shortages carry every one of them."""
    whole = f"Not enough stock for {'; '.join(map(str, shortages))}."
    if len(whole) <= contracts.MAX_REASON:
        return whole
    named: list[str] = []
    for shortage in shortages:
        more = len(shortages) - len(named) - 1
        sentence = f"Not enough stock for {'; '.join([*named, str(shortage)])}; and {more} more lines."
        if len(sentence) > contracts.MAX_REASON:
            break
        named.append(str(shortage))
    more = len(shortages) - len(named)
    return f"Not enough stock for {'; '.join(named)}; and {more} more line{'s' if more > 1 else ''}."


# The most stock a product may be created or restocked to. Units that orders
# still hold come back on top of it when they are cancelled (products.quantity
# is BIGINT for that): the shelf can show more, never less.
MAX_STOCK = 2**31 - 1


class ShelfFull(Exception):
    pass


def restock(product: Product, add: int) -> None:
    """`add` more on the shelf, which holds MAX_STOCK at the most (what cancelled
    orders give back may come on top of that: products.quantity is BIGINT). The
    caller holds the product's row lock, the one reservations take."""
    if product.quantity > MAX_STOCK - add:
        raise ShelfFull(f"The stock would exceed {MAX_STOCK}; it is {product.quantity}.")
    product.quantity += add


@dataclass
class Record:
    """What products-worker did for an order: a reservations row."""

    status: str
    taken: list[dict]  # [{product_id, quantity}]: what a cancellation gives back


# Built once: on this path building a statement costs more than running it.
_products, _reservations = Product.__table__, Reservation.__table__
_LOCK_PRODUCTS = (
    select(_products.c.id, _products.c.quantity)
    .where(_products.c.id == any_id("ids"))
    .order_by(_products.c.id)
    .with_for_update()
)
_LOCK_RESERVATIONS = (
    select(_reservations.c.order_id, _reservations.c.status, _reservations.c.taken)
    .where(_reservations.c.order_id == any_id("ids"))
    .order_by(_reservations.c.order_id)
    .with_for_update()
)
_shelves = (
    func.unnest(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("quantities", type_=ARRAY(BigInteger)))
    .table_valued("id", "quantity")
    .render_derived(name="shelves")
)
_SET_STOCK = update(_products).where(_products.c.id == _shelves.c.id).values(quantity=_shelves.c.quantity)
_RECORD = insert(_reservations)
_RELEASE = update(_reservations).where(_reservations.c.order_id == any_id("ids")).values(status=RELEASED)


@dataclass
class Locked:
    """What a batch of order events touches, loaded and locked by lock_events:
    {product id: units on the shelf} (a product that doesn't exist is missing: an
    order names only products that existed when it was placed, before the lock)
    and {order id: Record}. The handlers change these in memory, through the
    methods below for reservations; save() writes what changed."""

    stock: dict[int, int]
    reservations: dict[int, Record]
    _locked_stock: dict[int, int] = field(init=False)
    _new: list[int] = field(default_factory=list)
    _released: list[int] = field(default_factory=list)

    def __post_init__(self):
        self._locked_stock = dict(self.stock)

    def record(self, order_id: int, status: str, taken: list[dict]) -> None:
        self.reservations[order_id] = Record(status, taken)
        self._new.append(order_id)

    def release(self, order_id: int) -> None:
        """RESERVED → RELEASED, the order's lines back on the shelves."""
        record = self.reservations[order_id]
        for line in record.taken:
            # Locked by lock_events: the cancellation names the lines the order took.
            self.stock[line["product_id"]] += line["quantity"]
        record.status = RELEASED
        self._released.append(order_id)

    def save(self) -> None:
        """Write what the batch changed, in the consumer's transaction: each changed
        shelf once, the new reservations in one INSERT, the released ones in one
        UPDATE. A new reservation whose order another transaction recorded
        meanwhile fails on the key and rolls the whole batch back (module docstring)."""
        connection = db.session.connection()
        changed = [pid for pid, quantity in self.stock.items() if quantity != self._locked_stock[pid]]
        if changed:
            connection.execute(_SET_STOCK, {"ids": changed, "quantities": [self.stock[pid] for pid in changed]})
        if self._new:
            rows = [
                {"order_id": oid, "status": self.reservations[oid].status, "taken": self.reservations[oid].taken}
                for oid in self._new
            ]
            connection.execute(_RECORD, rows)
        released = [oid for oid in self._released if oid not in self._new]  # a new row is inserted as it ends
        if released:
            connection.execute(_RELEASE, {"ids": released})


def lock_events(events: list[contracts.OrderLines]) -> Locked:
    """Load and lock every product and every reservation a batch of order events
    touches, each in id order.

    Two workers' batches touching the same products or orders then queue up
    behind each other instead of deadlocking, whatever order their events came in.
    Products come first, as every statement on them (a restock included) takes
    them. The consumer hands what is locked to each handler of the batch, and
    saves it once they are done.
    """
    connection = db.session.connection()
    products = sorted({line.product_id for event in events for line in event.items})
    stock = dict(connection.execute(_LOCK_PRODUCTS, {"ids": products}).all())
    orders = sorted({event.order_id for event in events})
    rows = connection.execute(_LOCK_RESERVATIONS, {"ids": orders})
    return Locked(stock, {order_id: Record(status, taken) for order_id, status, taken in rows})


def reserve_stock(event: contracts.OrderCreated, locked: Locked) -> list[contracts.Event]:
    """OrderCreated → the stock of every line taken and InventoryReserved, or
    nothing taken and InventoryRejected with the shortages; nothing at all for an
    order cancelled before it got here."""
    order_id = event.order_id
    done = locked.reservations.get(order_id)
    if done is not None:
        # CANCELLED: the buyer cancelled first; orders has settled it as CANCELLED
        # and would ignore any outcome, so there is nothing to announce either.
        log.info("order %s is %s already; taking nothing", order_id, done.status)
        return []
    wanted = {line.product_id: line.quantity for line in event.items}
    shortages = [
        contracts.Shortage(product_id, quantity, locked.stock.get(product_id, 0))
        for product_id, quantity in sorted(wanted.items())
        if locked.stock.get(product_id, 0) < quantity
    ]
    if shortages:
        log.info("order %s rejected: %s", order_id, "; ".join(map(str, shortages)))
        locked.record(order_id, REJECTED, [])
        return [
            contracts.INVENTORY_REJECTED.new(
                order_id=order_id,
                reason=_reason(shortages),
                shortages=[msgspec.structs.asdict(shortage) for shortage in shortages],
            )
        ]
    for product_id, quantity in wanted.items():
        locked.stock[product_id] -= quantity
    taken = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in wanted.items()]
    locked.record(order_id, RESERVED, taken)
    log.info("order %s: stock reserved", order_id)
    return [contracts.INVENTORY_RESERVED.new(order_id=order_id)]


def release_stock(event: contracts.OrderCancelled, locked: Locked) -> list[contracts.Event]:
    """OrderCancelled → the stock the order took given back, once; or, if its
    OrderCreated hasn't been handled yet, a tombstone so that it takes nothing."""
    order_id = event.order_id
    done = locked.reservations.get(order_id)
    if done is None:
        locked.record(order_id, CANCELLED, [])
        log.info("order %s cancelled before its reservation; it will take nothing", order_id)
    elif done.status == RESERVED:
        locked.release(order_id)
        log.info("order %s cancelled: its stock is given back", order_id)
    else:  # REJECTED took nothing; RELEASED and CANCELLED were handled already
        log.info("order %s cancelled; it holds no stock (%s)", order_id, done.status)
    return []
