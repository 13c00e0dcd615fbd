"""The shop's queues: one per consuming worker, bound to the event types its
handlers take (common/events/__init__.py has the catalogue)."""

from common.events import contracts
from common.messaging.topology import declared_with, subscription

# products-worker takes stock for each new order and gives it back for each
# cancelled one. One queue for both, so that a cancellation usually arrives after
# its order (the handlers don't rely on it: products/inventory.py). The name is
# older than the cancellations; a quorum queue can't be renamed in place.
PRODUCTS_ORDER_CREATED = subscription("products.order-created", contracts.ORDER_CREATED, contracts.ORDER_CANCELLED)
# orders-worker settles each order with the outcome. (Brokers declared by a
# release before this one also bind it to inventory.*: the same two types today.)
ORDERS_INVENTORY_RESULTS = subscription(
    "orders.inventory-results", contracts.INVENTORY_RESERVED, contracts.INVENTORY_REJECTED
)

CONSUMER_QUEUES = [PRODUCTS_ORDER_CREATED, ORDERS_INVENTORY_RESULTS]
# Declared by every publisher and consumer when it connects (topology.declared_with).
DECLARED = declared_with(CONSUMER_QUEUES)
