"""Every exchange and queue in the system, declared once.

Producers and consumers both import these, so a queue is declared with the same
arguments wherever it is touched (RabbitMQ refuses a redeclaration that differs).
"""
from kombu import Exchange, Queue

# Domain events, routed by type ("order.created", ...). Durable, so it survives a broker restart.
EVENTS = Exchange("shop.events", type="topic", durable=True)

# Where messages go that could not be handled: undecodable, invalid, or failing
# more often than the delivery limit. Fanout, so one queue collects all of them.
DEAD_LETTERS = Exchange("shop.dead-letters", type="fanout", durable=True)
DEAD_LETTER_QUEUE = Queue("shop.dead-letters", exchange=DEAD_LETTERS, durable=True)

# A quorum queue counts deliveries itself and dead-letters a message once it has
# been handed out this many times, so a message that keeps failing can't loop forever.
DELIVERY_LIMIT = 5


def event_queue(name: str, routing_key: str) -> Queue:
    return Queue(
        name,
        exchange=EVENTS,
        routing_key=routing_key,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTERS.name,
        },
    )


ORDER_CREATED = "order.created"

# products-worker takes stock for each new order.
PRODUCTS_ORDER_CREATED = event_queue("products.order-created", ORDER_CREATED)
