"""Taking stock for an order: all lines or none, under row locks.

products-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py): they read and change rows and return the events
to announce; the consumer commits and acks.

A batch's products are loaded and locked once, in id order (lock_products), and
each order is then decided in memory, against the stock as the batch's earlier
orders left it: the session holds those products, and the commit writes each
changed one once. A batch of a hundred orders costs a few round trips, not two
per order.
"""

import logging
from dataclasses import asdict, dataclass

from sqlalchemy import select

from common.messaging import contracts
from products.models import Product, db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shortage:
    product_id: int
    requested: int
    available: int  # 0 for a product that doesn't exist

    def __str__(self) -> str:
        return f"product {self.product_id}: {self.available} left, {self.requested} requested"


def lock_products(events: list[contracts.OrderCreated]) -> None:
    """Load and lock every product a batch of OrderCreated events names, in id order.

    Two workers' batches touching the same products then queue up behind each
    other instead of deadlocking, whatever order their events came in.
    populate_existing: a product already in the session is refreshed with the
    locked row, not served from memory. They are kept in the session's info for
    the batch (its identity map alone holds objects only weakly).
    """
    ids = sorted({line.product_id for event in events for line in event.items})
    locked = db.session.scalars(
        select(Product)
        .where(Product.id.in_(ids))
        .order_by(Product.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    db.session.info["locked_products"] = {product.id: product for product in locked}


def _locked(product_id: int) -> Product | None:
    """The product as lock_products loaded it; None if it doesn't exist. (An order
    names only products that existed when it was placed, before the lock.)"""
    return db.session.info["locked_products"].get(product_id)


def reserve_stock(event: contracts.OrderCreated) -> list[contracts.Event]:
    """OrderCreated → the stock of every line taken and InventoryReserved, or
    nothing taken and InventoryRejected with the shortages."""
    products = {line.product_id: (_locked(line.product_id), line.quantity) for line in event.items}
    shortages = [
        Shortage(product_id, wanted, product.quantity if product else 0)
        for product_id, (product, wanted) in sorted(products.items())
        if product is None or product.quantity < wanted
    ]
    order_id = event.order_id
    if shortages:
        log.info("order %s rejected: %s", order_id, "; ".join(map(str, shortages)))
        return [
            contracts.INVENTORY_REJECTED.new(
                order_id=order_id,
                reason="Not enough stock for " + "; ".join(map(str, shortages)) + ".",
                shortages=[asdict(shortage) for shortage in shortages],
            )
        ]
    for product, wanted in products.values():
        product.quantity -= wanted
    log.info("order %s: stock reserved", order_id)
    return [contracts.INVENTORY_RESERVED.new(order_id=order_id)]
