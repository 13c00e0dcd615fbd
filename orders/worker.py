"""orders-worker: settles each order with the inventory outcome.

`python -m orders.worker`; with --healthcheck, exits 0 while its loop is alive.
"""
import sys

from common import queues
from common.daemon import run_process
from common.events import inventory_result_schema
from common.worker import load_event, serve_worker
from orders import create_app, settlement


def handle_inventory_result(body: dict) -> None:
    settlement.settle(load_event(inventory_result_schema, body))


def serve(heartbeat_path: str) -> None:
    serve_worker(create_app(), queues.ORDERS_INVENTORY_RESULTS, handle_inventory_result, heartbeat_path)


if __name__ == "__main__":
    sys.exit(run_process("orders.worker", __doc__.splitlines()[0], serve))
