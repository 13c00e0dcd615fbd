"""Cancelling an order: the saga's compensating step.

The order is locked, checked and set CANCELLED together with its OrderCancelled
event, in one transaction; products-worker gives back whatever stock the order
took when that event reaches it (products/inventory.py: whether the
reservation happened before or not). A cancel racing the reservation is safe on
this side too: settlement only ever moves a PENDING order (orders/settlement.py),
so an InventoryReserved that arrives after the cancel changes nothing.

Domain code: it raises what went wrong and the routes say it in HTTP.
"""

from datetime import UTC, datetime

from sqlalchemy import select

from common.events import contracts
from common.messaging import outbox
from orders.models import CANCELLED, CONFIRMED, PENDING, Order, OutboxMessage, db


class NoSuchOrder(Exception):
    """No order of this id belongs to the caller (someone else's looks the same)."""


class NotCancellable(Exception):
    pass


def cancel(user_id: int, order_id: int) -> Order:
    """The order, CANCELLED, added with its event to the session's transaction
    (the route commits). Cancelling a cancelled order changes nothing and answers
    the same, so a retry is harmless."""
    order = db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if order is None or order.user_id != user_id:
        raise NoSuchOrder()
    if order.status == CANCELLED:
        return order
    if order.status not in (PENDING, CONFIRMED):
        raise NotCancellable(f"A {order.status} order can't be cancelled.")
    if not order.cancellable:
        raise NotCancellable("This order was placed before orders could be cancelled.")
    order.status, order.cancelled_at = CANCELLED, datetime.now(UTC)
    event = contracts.ORDER_CANCELLED.new(
        order_id=order.id,
        user_id=user_id,
        items=[{"product_id": item.product_id, "quantity": item.quantity} for item in order.items],
    )
    outbox.add(db.session, OutboxMessage, [outbox.message(event)])
    return order
