"""How events travel: the exchange they are published to, the queues consumers
take them from (built by `subscription`), each queue's retry queue, and the dead
letters. The shop's own queues are in common/events/queues.py.

A queue is always built by these functions, so it is declared with the same
arguments wherever it is touched (RabbitMQ refuses a redeclaration that differs).
"""

from kombu import Exchange, Queue, binding

from common.messaging.event import EventType

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


def subscription(name: str, *event_types: EventType) -> Queue:
    """The queue `name`, bound to exactly these event types: a worker consumes
    from it what its handlers take (the consumer checks that they agree)."""
    return Queue(
        name,
        bindings=[binding(EVENTS, routing_key=event_type.routing_key) for event_type in event_types],
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTERS.name,
        },
    )


def routing_keys(queue: Queue) -> set[str]:
    """The routing keys `queue` is bound to."""
    return {queue_binding.routing_key for queue_binding in queue.bindings}


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


def declared_with(consumer_queues: list[Queue]) -> list[Queue]:
    """What must exist before anything is published or consumed: each consumer's
    queue, so an event published before its consumer ever ran waits instead of
    being dropped by an exchange with no bindings; their retry queues; and the
    dead-letter queue, since RabbitMQ silently drops dead letters whose exchange
    doesn't exist. Publishers and consumers declare these when they connect."""
    return [DEAD_LETTER_QUEUE, *consumer_queues, *map(retry_queue, consumer_queues)]
