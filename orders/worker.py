"""orders-worker: settles each order with the inventory outcome.

`python -m orders.worker`; with --healthcheck it exits 0 while its loop is alive.
"""

import sys

from sqlalchemy import event

from common.events import contracts, queues
from common.messaging.consumer import EventConsumer, consumer_for, serve_consumer
from common.messaging.process import run_process
from orders import background_app, settlement
from orders.models import OutboxMessage, ProcessedEvent


def consumer(app, heartbeat_path: str | None = None) -> EventConsumer:
    session = app.extensions["sqlalchemy"].session
    for name, listener in (("after_commit", settlement.observe_lags), ("after_rollback", settlement.forget_lags)):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)
    return consumer_for(
        app,
        queues.ORDERS_INVENTORY_RESULTS,
        {contracts.INVENTORY_RESERVED: settlement.settle, contracts.INVENTORY_REJECTED: settlement.settle},
        lock=settlement.lock_orders,
        save=settlement.Locked.save,
        processed=ProcessedEvent,
        outbox_model=OutboxMessage,
        heartbeat_path=heartbeat_path,
    )


def serve(heartbeat_path: str) -> None:
    app = background_app()
    serve_consumer(app, consumer(app, heartbeat_path), reported=queues.DECLARED)


if __name__ == "__main__":
    sys.exit(run_process("orders.worker", __doc__, serve))
