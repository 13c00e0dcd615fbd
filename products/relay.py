"""products-relay: publishes the products service's outbox (see common/outbox.py).

`python -m products.relay`; with --healthcheck, exits 0 while its loop is alive.
"""
import sys

from common.daemon import run_process
from common.outbox import serve_relay
from products import create_app
from products.models import OutboxMessage, db


def serve(heartbeat_path: str) -> None:
    serve_relay(create_app(), db, OutboxMessage, heartbeat_path)


if __name__ == "__main__":
    sys.exit(run_process("products.relay", __doc__.splitlines()[0], serve))
