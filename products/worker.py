"""products-worker: takes stock for each OrderCreated event.

Run it as its own process (`python -m products.worker`), never as a thread inside
a web worker: it has its own lifecycle, scaling and failure modes.
`python -m products.worker --healthcheck` exits 0 while the loop is alive.
"""
import argparse
import logging
import os
import sys

import marshmallow as ma

from common import queues
from common.events import order_created_schema
from common.worker import EventWorker, InvalidEvent, heartbeat_is_fresh
from products import create_app, inventory
from products.models import db

log = logging.getLogger(__name__)

HEARTBEAT_PATH = os.environ.get("WORKER_HEARTBEAT", "/tmp/products-worker.alive")
# The loop touches the heartbeat at least once a second while connected.
HEARTBEAT_MAX_AGE = 15


def handle_order_created(body: dict) -> None:
    try:
        event = order_created_schema.load(body)
    except ma.ValidationError as exc:
        raise InvalidEvent(exc.messages) from None
    lines: dict[int, int] = {}
    for line in event["items"]:
        lines[line["product_id"]] = lines.get(line["product_id"], 0) + line["quantity"]
    try:
        shortages = inventory.reserve(str(event["event_id"]), lines)
    finally:
        # One session per message: a failure can't leave a broken transaction behind
        # for the next one, and the connection goes back to the pool.
        db.session.remove()
    if shortages is None:
        log.info("order %s: event %s already handled", event["order_id"], event["event_id"])
    elif shortages:
        log.warning("order %s: not enough stock, nothing taken: %s", event["order_id"], shortages)
    else:
        log.info("order %s: stock taken for %d product(s)", event["order_id"], len(lines))


def make_worker(app) -> EventWorker:
    return EventWorker(
        app.config["AMQP_URL"],
        queues.PRODUCTS_ORDER_CREATED,
        handle_order_created,
        prefetch=app.config.get("WORKER_PREFETCH", 50),
        heartbeat_path=HEARTBEAT_PATH,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m products.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--healthcheck", action="store_true", help="exit 0 if the worker loop is alive")
    args = parser.parse_args(argv)
    if args.healthcheck:
        return 0 if heartbeat_is_fresh(HEARTBEAT_PATH, HEARTBEAT_MAX_AGE) else 1

    app = create_app()
    with app.app_context():
        make_worker(app).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
