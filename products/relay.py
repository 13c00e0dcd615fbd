"""products-relay: publishes the products service's outbox (common/messaging/relay.py).

`python -m products.relay`; with --healthcheck it exits 0 while its loop is alive.
"""

import sys

from common.messaging.process import run_process
from common.messaging.relay import serve_relay
from products import create_app
from products.models import OutboxMessage


def serve(heartbeat_path: str) -> None:
    serve_relay(create_app(), OutboxMessage, heartbeat_path)


if __name__ == "__main__":
    sys.exit(run_process("products.relay", __doc__, serve))
