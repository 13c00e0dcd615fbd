"""orders-relay: publishes the orders service's outbox (common/messaging/relay.py),
and prunes its bookkeeping tables (common/retention.py).

`python -m orders.relay`; with --healthcheck it exits 0 while its loop is alive.
"""

import sys

from common.events import queues
from common.messaging.process import run_process
from common.messaging.relay import serve_relay
from common.retention import Retention, bookkeeping
from common.settings import Settings
from orders import background_app
from orders.models import IdempotencyKey, OutboxMessage, ProcessedEvent


def serve(heartbeat_path: str) -> None:
    app = background_app()
    serve_relay(
        app, OutboxMessage, heartbeat_path, declare=queues.DECLARED, retentions=retentions(app.config["SETTINGS"])
    )


def retentions(settings: Settings) -> list[Retention]:
    """What orders' bookkeeping tables keep."""
    return bookkeeping(settings, outbox=OutboxMessage, processed_events=ProcessedEvent, idempotency_keys=IdempotencyKey)


if __name__ == "__main__":
    sys.exit(run_process("orders.relay", __doc__, serve))
