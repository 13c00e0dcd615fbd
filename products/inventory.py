"""Taking stock for an order: all lines or none, under row locks.

products-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py): they read and change rows, and return the
events to announce; the consumer commits and acks.
"""

import logging
from dataclasses import asdict, dataclass

from sqlalchemy import bindparam, select, update

from common.messaging import contracts
from products.models import Product, db

log = logging.getLogger(__name__)

# Built once: on this hot path, building a statement costs more than running it.
_products = Product.__table__
_ids = bindparam("ids", expanding=True)
_LOCK = select(_products.c.id).where(_products.c.id.in_(_ids)).order_by(_products.c.id).with_for_update()
# FOR UPDATE again: cheap where lock_products locked them, and what makes this
# safe where it didn't.
_STOCK = select(_products.c.id, _products.c.quantity).where(_products.c.id.in_(_ids)).with_for_update()
# Run once per line (executemany): the rows are locked already.
_TAKE = (
    update(_products)
    .where(_products.c.id == bindparam("product_id"))
    .values(quantity=_products.c.quantity - bindparam("wanted"))
)


@dataclass(frozen=True)
class Shortage:
    product_id: int
    requested: int
    available: int  # 0 for a product that doesn't exist

    def __str__(self) -> str:
        return f"product {self.product_id}: {self.available} left, {self.requested} requested"


def lock_products(events: list[dict]) -> None:
    """Lock every product a batch of OrderCreated events touches, in id order.

    Two workers' batches touching the same products then queue up behind each
    other instead of deadlocking, whatever order their events came in.
    """
    ids = sorted({line["product_id"] for event in events for line in event["items"]})
    db.session.connection().execute(_LOCK, {"ids": ids})


def reserve_stock(event: dict) -> list[dict]:
    """OrderCreated → the stock of every line taken and InventoryReserved, or
    nothing taken and InventoryRejected with the shortages."""
    lines = {line["product_id"]: line["quantity"] for line in event["items"]}
    connection = db.session.connection()
    stock = dict(connection.execute(_STOCK, {"ids": list(lines)}).all())
    shortages = [
        Shortage(product_id, wanted, stock.get(product_id, 0))
        for product_id, wanted in sorted(lines.items())
        if stock.get(product_id, 0) < wanted
    ]
    order_id = event["order_id"]
    if shortages:
        log.info("order %s rejected: %s", order_id, "; ".join(map(str, shortages)))
        return [
            contracts.INVENTORY_REJECTED.new(
                order_id=order_id,
                reason="Not enough stock for " + "; ".join(map(str, shortages)) + ".",
                shortages=[asdict(shortage) for shortage in shortages],
            )
        ]
    connection.execute(_TAKE, [{"product_id": pid, "wanted": wanted} for pid, wanted in lines.items()])
    log.info("order %s: stock reserved", order_id)
    return [contracts.INVENTORY_RESERVED.new(order_id=order_id)]
