"""Every exchange and queue in the system, declared once.

Producers and consumers both import these, so a queue is declared with the same
arguments wherever it is touched (RabbitMQ refuses a redeclaration that differs).

    orders   ──order.created/──────────► products.order-created   ──► products-worker
               order.cancelled
    products ──inventory.reserved/─────► orders.inventory-results ──► orders-worker
               inventory.rejected
"""

from kombu import Exchange, Queue, binding

from common.messaging import contracts

# Domain events, routed by type. Durable, so it survives a broker restart.
EVENTS = Exchange("shop.events", type="topic", durable=True)

# Where messages go that could not be handled: undecodable, invalid, or failing
# more often than the delivery limit. Fanout, so one queue collects all of them;
# each keeps its x-death header (which queue, why, the original routing key).
DEAD_LETTERS = Exchange("shop.dead-letters", type="fanout", durable=True)
DEAD_LETTER_QUEUE = Queue("shop.dead-letters", exchange=DEAD_LETTERS, durable=True)

# How many times a message may come back before it is dead-lettered, so that one
# that keeps failing can't loop forever. Two counts hold it: the quorum queue's
# own (x-delivery-limit), which also counts the returns of a worker that crashed
# mid-message, and the consumer's count of retries (RETRIES_HEADER), for a
# handler that failed: such a message goes through the queue's retry queue.
DELIVERY_LIMIT = 5
# A failed message's copy in a retry queue carries its count of retries, and the
# routing key it was published with (it comes back through the default exchange).
RETRIES_HEADER = "x-shop-retries"
ROUTING_KEY_HEADER = "x-shop-routing-key"


def event_queue(name: str, *routing_keys: str) -> Queue:
    return Queue(
        name,
        bindings=[binding(EVENTS, routing_key=routing_key) for routing_key in routing_keys],
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTERS.name,
        },
    )


def retry_queue(queue: Queue) -> Queue:
    """Where a message whose handler failed waits, without holding up the consumer
    of `queue`, until its expiration (set per message: the retry's backoff); then
    RabbitMQ dead-letters it back to `queue` through the default exchange. A
    classic queue: it expires messages from its head, so a short wait can stand
    behind a longer one, bounded by the consumer's max_pause."""
    return Queue(
        f"{queue.name}.retry",
        durable=True,
        queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue.name},
    )


# products-worker takes stock for each new order and gives it back for each
# cancelled one. One queue for both, so that a cancellation usually arrives after
# its order (the handlers don't rely on it: products/inventory.py). The name is
# older than the cancellations; a quorum queue can't be renamed in place.
PRODUCTS_ORDER_CREATED = event_queue(
    "products.order-created", contracts.ORDER_CREATED.routing_key, contracts.ORDER_CANCELLED.routing_key
)
# orders-worker settles each order with the outcome.
ORDERS_INVENTORY_RESULTS = event_queue("orders.inventory-results", "inventory.*")

CONSUMER_QUEUES = [PRODUCTS_ORDER_CREATED, ORDERS_INVENTORY_RESULTS]

# What must exist before anything is published or consumed: each consumer's queue,
# so an event published before its consumer ever ran waits instead of being
# dropped by an exchange with no bindings; and the dead-letter queue, since
# RabbitMQ silently drops dead letters whose exchange doesn't exist. Publishers
# and consumers declare these when they connect.
DECLARED_QUEUES = [DEAD_LETTER_QUEUE, *CONSUMER_QUEUES, *map(retry_queue, CONSUMER_QUEUES)]
