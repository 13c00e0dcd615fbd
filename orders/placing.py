"""Placing an order: check the catalog, price it, store it with its OrderCreated event.

Domain code: it raises what went wrong (UnknownProduct, OutOfStock,
TotalTooLarge, or CatalogUnavailable from the catalog) and the routes say it in HTTP.
"""

from decimal import Decimal

from flask import current_app
from sqlalchemy import insert

from common.events import contracts
from common.messaging import outbox
from orders.models import PENDING, Order, OrderItem, OutboxMessage, db

# Set-based and built once: one INSERT … RETURNING for the order, one for all its
# lines; no objects to track for rows written once.
_orders = Order.__table__
_ADD_ORDER = insert(_orders).returning(_orders.c.id, _orders.c.created_at)
_ADD_ITEMS = insert(OrderItem.__table__)
# The largest total orders.total (NUMERIC(14, 2)) holds: 100 lines at the largest
# price (common/fields.py MAX_MONEY) and quantities can add up to more.
MAX_TOTAL = Decimal("999999999999.99")


class UnknownProduct(Exception):
    def __init__(self, product_ids: list[int]):
        self.product_ids = product_ids
        super().__init__(" ".join(f"Product {product_id} does not exist." for product_id in product_ids))


class OutOfStock(Exception):
    def __init__(self, shortages: list[contracts.Shortage]):
        self.shortages = shortages
        super().__init__(" ".join(f"Not enough stock for {shortage}." for shortage in shortages))


class TotalTooLarge(Exception):
    def __init__(self, total: Decimal):
        self.total = total
        super().__init__(f"The order's total, {total}, is more than the shop takes in one order ({MAX_TOTAL}).")


def place(user_id: int, lines: list[dict]) -> dict:
    """The order as created (PENDING), added with its event to the session's
    transaction; the caller commits (the route's idempotent())."""
    wanted = {line["product_id"]: line["quantity"] for line in lines}
    products = current_app.extensions["catalog"].lookup(list(wanted))
    missing = [product_id for product_id in wanted if product_id not in products]
    if missing:
        raise UnknownProduct(missing)
    short = [
        contracts.Shortage(pid, qty, products[pid].quantity)
        for pid, qty in wanted.items()
        if products[pid].quantity < qty
    ]
    if short:
        raise OutOfStock(short)

    items = [{"product_id": pid, "quantity": qty, "unit_price": products[pid].price} for pid, qty in wanted.items()]
    total = sum((item["unit_price"] * item["quantity"] for item in items), Decimal("0"))
    if total > MAX_TOTAL:
        raise TotalTooLarge(total)
    connection = db.session.connection()
    order_id, created_at = connection.execute(_ADD_ORDER, {"user_id": user_id, "status": PENDING, "total": total}).one()
    connection.execute(_ADD_ITEMS, [{"order_id": order_id, **item} for item in items])
    # The event commits with the order or not at all; orders-relay publishes it.
    event = contracts.ORDER_CREATED.new(
        order_id=order_id, user_id=user_id, items=[{"product_id": pid, "quantity": qty} for pid, qty in wanted.items()]
    )
    outbox.add(db.session, OutboxMessage, [outbox.message(event)])
    return {
        "id": order_id,
        "status": PENDING,
        "reason": None,
        "total": total,
        "items": items,
        "created_at": created_at,
        "settled_at": None,
        "cancelled_at": None,
    }
