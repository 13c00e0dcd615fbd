"""Settling an order with the inventory outcome: exactly once, never undone."""
import logging
from datetime import datetime, timezone

from sqlalchemy.orm import noload

from common import queues
from common.idempotency import claim
from common.worker import InvalidEvent
from orders.models import CONFIRMED, PENDING, REJECTED, Order, ProcessedEvent, db

log = logging.getLogger(__name__)

STATUS_FOR = {queues.INVENTORY_RESERVED: CONFIRMED, queues.INVENTORY_REJECTED: REJECTED}


def settle(event: dict) -> None:
    """Move the order from PENDING to CONFIRMED or REJECTED, in one transaction
    with the claim on the event, so a redelivery finds it done."""
    if not claim(db.session, ProcessedEvent, str(event["event_id"])):
        log.info("order %s: event %s already handled", event["order_id"], event["event_id"])
        return
    order = db.session.scalars(
        db.select(Order)
        .filter_by(id=event["order_id"])
        .options(noload(Order.items))  # settling needs the status, not the lines (~20% of the worker's CPU)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if order is None:
        raise InvalidEvent(f"no order {event['order_id']}")
    if order.status != PENDING:
        # A second outcome for the same order (say, OrderCreated republished and
        # handled again) never overturns the first.
        log.warning("order %s is already %s; ignoring %s", order.id, order.status, event["type"])
    else:
        order.status = STATUS_FOR[event["type"]]
        order.reason = event.get("reason")
        order.settled_at = datetime.now(timezone.utc)
        log.info("order %s %s", order.id, order.status)
    db.session.commit()
