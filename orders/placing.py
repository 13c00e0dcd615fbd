"""Placing an order: check the catalog, price it, store it, announce it."""
import logging

from flask import current_app
from flask_smorest import abort
from kombu.exceptions import KombuError

from common import queues
from common.events import new_event
from orders.catalog import CatalogUnavailable
from orders.models import Order, OrderItem, db

log = logging.getLogger(__name__)


def place(user_id: int, lines: list[dict]) -> Order:
    catalog = current_app.extensions["catalog"]
    items = []
    for line in lines:
        try:
            product = catalog.get(line["product_id"])
        except CatalogUnavailable:
            abort(503, message="The products service is unavailable; try again shortly.")
        if product is None:
            abort(422, message=f"Product {line['product_id']} does not exist.")
        if product.quantity < line["quantity"]:
            abort(
                409,
                message=f"Not enough stock for product {product.id}: "
                f"{product.quantity} left, {line['quantity']} requested.",
            )
        items.append(OrderItem(product_id=product.id, quantity=line["quantity"], unit_price=product.price))

    order = Order(user_id=user_id, items=items, total=sum(item.unit_price * item.quantity for item in items))
    db.session.add(order)
    db.session.commit()
    _announce(order)
    return order


def _announce(order: Order) -> None:
    event = new_event(
        queues.ORDER_CREATED,
        order_id=order.id,
        user_id=order.user_id,
        items=[{"product_id": item.product_id, "quantity": item.quantity} for item in order.items],
    )
    try:
        current_app.extensions["publisher"].publish(
            event, queues.ORDER_CREATED, declare=[queues.PRODUCTS_ORDER_CREATED]
        )
    except (KombuError, OSError):
        # The order is committed and the buyer gets it; the event is what is lost here.
        log.exception("order %s stored but OrderCreated %s not published", order.id, event["event_id"])
