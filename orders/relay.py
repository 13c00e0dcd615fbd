"""orders-relay: publishes the orders service's outbox (common/messaging/relay.py).

`python -m orders.relay`; with --healthcheck it exits 0 while its loop is alive.
"""

import sys

from common.messaging.process import run_process
from common.messaging.relay import serve_relay
from orders import create_app
from orders.models import OutboxMessage


def serve(heartbeat_path: str) -> None:
    serve_relay(create_app(), OutboxMessage, heartbeat_path)


if __name__ == "__main__":
    sys.exit(run_process("orders.relay", __doc__, serve))
