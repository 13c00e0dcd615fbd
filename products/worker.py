"""products-worker: takes stock for each OrderCreated and says how it went.

Run it as its own process (`python -m products.worker`), never as a thread inside
a web worker: it has its own lifecycle, scaling and failure modes.
`python -m products.worker --healthcheck` exits 0 while its loop is alive.
"""
import logging
import sys

from common import outbox, queues
from common.daemon import run_process
from common.events import order_created_schema
from common.idempotency import claim
from common.worker import load_event, serve_worker
from products import create_app, inventory
from products.models import OutboxMessage, ProcessedEvent, db

log = logging.getLogger("products.worker")  # not __name__: this module runs as __main__


def handle_order_created(body: dict) -> None:
    """Reserve the order's stock and queue the outcome event, in one transaction."""
    event = load_event(order_created_schema, body)
    lines: dict[int, int] = {}
    for line in event["items"]:
        lines[line["product_id"]] = lines.get(line["product_id"], 0) + line["quantity"]
    if not claim(db.session, ProcessedEvent, str(event["event_id"])):
        log.info("order %s: event %s already handled", event["order_id"], event["event_id"])
        return
    shortages = inventory.reserve(lines)
    outbox.enqueue(db.session, OutboxMessage, inventory.outcome_event(event["order_id"], shortages))
    db.session.commit()
    if shortages:
        log.info("order %s rejected: %s", event["order_id"], "; ".join(map(str, shortages)))
    else:
        log.info("order %s: stock reserved", event["order_id"])


def serve(heartbeat_path: str) -> None:
    serve_worker(create_app(), queues.PRODUCTS_ORDER_CREATED, handle_order_created, heartbeat_path)


if __name__ == "__main__":
    sys.exit(run_process("products.worker", __doc__.splitlines()[0], serve))
