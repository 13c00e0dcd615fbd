"""Taking stock for an order, and giving it back when the order is cancelled.

products-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py): they read and change rows, and return the
events to announce; the consumer commits and acks.

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
from dataclasses import asdict, dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert

from common.messaging import contracts
from products.models import CANCELLED, REJECTED, RELEASED, RESERVED, Product, Reservation, db

log = logging.getLogger(__name__)

_products = Product.__table__
_reservations = Reservation.__table__
# One statement, run once per line: the lines' rows are locked already.
_CHANGE = (
    update(_products)
    .where(_products.c.id == bindparam("product_id"))
    .values(quantity=_products.c.quantity + bindparam("delta"))
)


@dataclass(frozen=True)
class Shortage:
    product_id: int
    requested: int
    available: int  # 0 for a product that doesn't exist

    def __str__(self) -> str:
        return f"product {self.product_id}: {self.available} left, {self.requested} requested"


def lock_events(events: list[dict]) -> None:
    """Lock every product and every reservation a batch of order events touches,
    each in id order.

    Two workers' batches touching the same products or orders then queue up
    behind each other instead of deadlocking, whatever order their events came in.
    Products come first, as every statement on them (a restock included) takes them.
    """
    ids = sorted({line["product_id"] for event in events for line in event["items"]})
    db.session.execute(select(_products.c.id).where(_products.c.id.in_(ids)).order_by(_products.c.id).with_for_update())
    orders = sorted({event["order_id"] for event in events})
    db.session.execute(
        select(_reservations.c.order_id)
        .where(_reservations.c.order_id.in_(orders))
        .order_by(_reservations.c.order_id)
        .with_for_update()
    )


def _recorded(order_id: int) -> str | None:
    """What was done for this order before (a reservations status), locked."""
    return db.session.execute(
        select(_reservations.c.status).where(_reservations.c.order_id == order_id).with_for_update()
    ).scalar()


def _record(order_id: int, status: str, taken: list[dict]) -> None:
    # A plain INSERT: if another transaction recorded this order meanwhile, this
    # one fails on the key and rolls back whole (module docstring).
    db.session.execute(insert(_reservations).values(order_id=order_id, status=status, taken=taken))


def reserve_stock(event: dict) -> list[dict]:
    """OrderCreated → the stock of every line taken and InventoryReserved, or
    nothing taken and InventoryRejected with the shortages; nothing at all for an
    order cancelled before it got here."""
    order_id = event["order_id"]
    if _recorded(order_id) == CANCELLED:
        # The buyer cancelled first; orders has settled it as CANCELLED and would
        # ignore any outcome, so there is nothing to announce either.
        log.info("order %s was cancelled before its stock was reserved; taking nothing", order_id)
        return []
    lines = {line["product_id"]: line["quantity"] for line in event["items"]}
    stock = dict(
        db.session.execute(
            # FOR UPDATE again: cheap where lock_events locked them, and what
            # makes this safe where it didn't.
            select(_products.c.id, _products.c.quantity).where(_products.c.id.in_(lines)).with_for_update()
        ).all()
    )
    shortages = [
        Shortage(product_id, wanted, stock.get(product_id, 0))
        for product_id, wanted in sorted(lines.items())
        if stock.get(product_id, 0) < wanted
    ]
    if shortages:
        log.info("order %s rejected: %s", order_id, "; ".join(map(str, shortages)))
        _record(order_id, REJECTED, [])
        return [
            contracts.INVENTORY_REJECTED.new(
                order_id=order_id,
                reason="Not enough stock for " + "; ".join(map(str, shortages)) + ".",
                shortages=[asdict(shortage) for shortage in shortages],
            )
        ]
    db.session.execute(_CHANGE, [{"product_id": pid, "delta": -wanted} for pid, wanted in lines.items()])
    _record(order_id, RESERVED, event["items"])
    log.info("order %s: stock reserved", order_id)
    return [contracts.INVENTORY_RESERVED.new(order_id=order_id)]


def release_stock(event: dict) -> list[dict]:
    """OrderCancelled → the stock the order took given back, once; or, if its
    OrderCreated hasn't been handled yet, a tombstone so that it takes nothing."""
    order_id = event["order_id"]
    done = _recorded(order_id)
    if done is None:
        _record(order_id, CANCELLED, [])
        log.info("order %s cancelled before its reservation; it will take nothing", order_id)
    elif done == RESERVED:
        taken = db.session.execute(select(_reservations.c.taken).where(_reservations.c.order_id == order_id)).scalar()
        db.session.execute(_CHANGE, [{"product_id": line["product_id"], "delta": line["quantity"]} for line in taken])
        db.session.execute(update(_reservations).where(_reservations.c.order_id == order_id).values(status=RELEASED))
        log.info("order %s cancelled: its stock is given back", order_id)
    else:  # REJECTED took nothing; RELEASED and CANCELLED were handled already
        log.info("order %s cancelled; it holds no stock (%s)", order_id, done)
    return []
