"""Taking stock for an order: all lines or none, under row locks."""
import logging
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert

from products.models import ProcessedEvent, Product, db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shortage:
    product_id: int
    requested: int
    available: int  # 0 for a product that doesn't exist


def reserve(event_id: str, lines: dict[int, int]) -> list[Shortage] | None:
    """Decrement stock for every line of an order in one transaction.

    `lines` maps product id to quantity. Returns None when the event was already
    handled, [] when stock was taken, or the shortages when it wasn't (then nothing
    changes). Either outcome is recorded under the event id, so handling the same
    event twice never takes stock twice.
    """
    claimed = db.session.execute(
        insert(ProcessedEvent).values(event_id=event_id).on_conflict_do_nothing().returning(ProcessedEvent.event_id)
    ).scalar_one_or_none()
    if claimed is None:
        db.session.rollback()
        return None

    # Lock in id order: two orders touching the same products then queue up behind
    # each other instead of deadlocking.
    products = {
        product.id: product
        for product in db.session.execute(
            db.select(Product).where(Product.id.in_(lines)).order_by(Product.id).with_for_update()
        ).scalars()
    }
    shortages = [
        Shortage(product_id, wanted, products[product_id].quantity if product_id in products else 0)
        for product_id, wanted in sorted(lines.items())
        if product_id not in products or products[product_id].quantity < wanted
    ]
    if not shortages:
        for product_id, wanted in lines.items():
            products[product_id].quantity -= wanted
    db.session.commit()
    return shortages
