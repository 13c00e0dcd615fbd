"""products-relay: publishes the products service's outbox (common/messaging/relay.py),
and prunes its bookkeeping tables (common/retention.py).

`python -m products.relay`; with --healthcheck it exits 0 while its loop is alive.
"""

import sys

from common.events import queues
from common.messaging.process import run_process
from common.messaging.relay import serve_relay
from common.retention import Retention, bookkeeping
from common.settings import Settings
from products import background_app
from products.models import SETTLED_RESERVATIONS, IdempotencyKey, OutboxMessage, ProcessedEvent


def serve(heartbeat_path: str) -> None:
    app = background_app()
    serve_relay(
        app, OutboxMessage, heartbeat_path, declare=queues.DECLARED, retentions=retentions(app.config["SETTINGS"])
    )


def retentions(settings: Settings) -> list[Retention]:
    """What products' bookkeeping tables keep, its settled reservations included."""
    tables = bookkeeping(
        settings, outbox=OutboxMessage, processed_events=ProcessedEvent, idempotency_keys=IdempotencyKey
    )
    return [*tables, SETTLED_RESERVATIONS]


if __name__ == "__main__":
    sys.exit(run_process("products.relay", __doc__, serve))
