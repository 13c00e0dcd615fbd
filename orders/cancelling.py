"""Cancelling an order: the saga's compensating step.

The order is locked, checked and set CANCELLED together with its OrderCancelled
event, in one transaction; products-worker gives back whatever stock the order
took when that event reaches it (products/inventory.py: whether the
reservation happened before or not). A cancel racing the reservation is safe on
this side too: only a PENDING order is ever settled (Order.settle in orders/models.py),
so an InventoryReserved that arrives after the cancel changes nothing.

Domain code: it raises what went wrong and the routes say it in HTTP.
"""

from sqlalchemy import select

from common.events import contracts
from common.messaging import outbox
from orders.models import Order, OutboxMessage, db


class NoSuchOrder(Exception):
    """No order of this id belongs to the caller (someone else's looks the same)."""


def cancel(user_id: int, order_id: int) -> Order:
    """The order, CANCELLED, added with its event to the session's transaction
    (the route commits). Cancelling a cancelled order changes nothing and answers
    the same, so a retry is harmless."""
    order = db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if order is None or order.user_id != user_id:
        raise NoSuchOrder()
    if not order.cancel():
        return order
    event = contracts.ORDER_CANCELLED.new(
        order_id=order.id,
        user_id=user_id,
        items=[{"product_id": item.product_id, "quantity": item.quantity} for item in order.items],
    )
    outbox.add(db.session, OutboxMessage, [outbox.message(event)])
    return order
