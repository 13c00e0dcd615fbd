"""Placing an order: check the catalog, price it, store it with its OrderCreated event."""
from flask import current_app
from flask_smorest import abort

from common import outbox, queues
from common.events import new_event
from orders.catalog import CatalogUnavailable
from orders.models import Order, OrderItem, OutboxMessage, db


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
    db.session.flush()  # assigns the order id the event carries
    # The event commits with the order or not at all; orders-relay publishes it.
    outbox.enqueue(
        db.session,
        OutboxMessage,
        new_event(
            queues.ORDER_CREATED,
            order_id=order.id,
            user_id=user_id,
            items=[{"product_id": item.product_id, "quantity": item.quantity} for item in items],
        ),
    )
    db.session.commit()
    return order
