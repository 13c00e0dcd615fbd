"""orders-relay: publishes the orders service's outbox (see common/outbox.py).

`python -m orders.relay`; with --healthcheck, exits 0 while its loop is alive.
"""
import sys

from common.daemon import run_process
from common.outbox import serve_relay
from orders import create_app
from orders.models import OutboxMessage, db


def serve(heartbeat_path: str) -> None:
    serve_relay(create_app(), db, OutboxMessage, heartbeat_path)


if __name__ == "__main__":
    sys.exit(run_process("orders.relay", __doc__.splitlines()[0], serve))
