"""products-worker: takes stock for each OrderCreated and says how it went, and
gives it back for each OrderCancelled.

`python -m products.worker`, its own process: its lifecycle, scaling and failure
modes are not a web worker's. With --healthcheck it exits 0 while its loop is alive.
"""

import sys

from common.events import contracts, queues
from common.messaging.consumer import EventConsumer, consumer_for, serve_consumer
from common.messaging.process import run_process
from products import background_app, inventory
from products.models import OutboxMessage, ProcessedEvent


def consumer(app, heartbeat_path: str | None = None) -> EventConsumer:
    return consumer_for(
        app,
        queues.PRODUCTS_ORDER_CREATED,
        {contracts.ORDER_CREATED: inventory.reserve_stock, contracts.ORDER_CANCELLED: inventory.release_stock},
        lock=inventory.lock_events,
        save=inventory.Locked.save,
        processed=ProcessedEvent,
        outbox_model=OutboxMessage,
        heartbeat_path=heartbeat_path,
    )


def serve(heartbeat_path: str) -> None:
    app = background_app()
    serve_consumer(app, consumer(app, heartbeat_path), reported=queues.DECLARED)


if __name__ == "__main__":
    sys.exit(run_process("products.worker", __doc__, serve))
