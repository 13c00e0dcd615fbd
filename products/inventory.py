"""Taking stock for an order: all lines or none, under row locks."""
from dataclasses import asdict, dataclass

from common import queues
from common.events import new_event
from products.models import Product, db


@dataclass(frozen=True)
class Shortage:
    product_id: int
    requested: int
    available: int  # 0 for a product that doesn't exist

    def __str__(self) -> str:
        return f"product {self.product_id}: {self.available} left, {self.requested} requested"


def reserve(lines: dict[int, int]) -> list[Shortage]:
    """Take stock for every line (product id → quantity) in the caller's transaction.

    Either every line has enough stock and all are decremented, or nothing
    changes and the shortages are returned.
    """
    # Lock in id order: two orders touching the same products then queue up behind
    # each other instead of deadlocking. populate_existing: a product already in the
    # session must be refreshed with the locked row, not served from memory.
    products = {
        product.id: product
        for product in db.session.scalars(
            db.select(Product)
            .where(Product.id.in_(lines))
            .order_by(Product.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    shortages = [
        Shortage(product_id, wanted, products[product_id].quantity if product_id in products else 0)
        for product_id, wanted in sorted(lines.items())
        if product_id not in products or products[product_id].quantity < wanted
    ]
    if not shortages:
        for product_id, wanted in lines.items():
            products[product_id].quantity -= wanted
    return shortages


def outcome_event(order_id: int, shortages: list[Shortage]) -> dict:
    """The event that tells orders how its order went."""
    if not shortages:
        return new_event(queues.INVENTORY_RESERVED, order_id=order_id)
    return new_event(
        queues.INVENTORY_REJECTED,
        order_id=order_id,
        reason="Not enough stock for " + "; ".join(map(str, shortages)) + ".",
        shortages=[asdict(shortage) for shortage in shortages],
    )
