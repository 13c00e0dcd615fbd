"""Settling an order with the inventory outcome: exactly once, never undone.

orders-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py); the consumer commits and acks. As in products'
inventory, the batch's orders are loaded and locked once and settled in memory;
the commit writes each changed order once.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import noload

from common.messaging import contracts
from common.messaging.contracts import InvalidEvent
from orders.models import CONFIRMED, PENDING, REJECTED, Order, db

log = logging.getLogger(__name__)

STATUS_FOR = {contracts.INVENTORY_RESERVED.routing_key: CONFIRMED, contracts.INVENTORY_REJECTED.routing_key: REJECTED}


def lock_orders(events: list[contracts.Event]) -> None:
    """Load and lock the batch's orders in id order, so two workers' batches can't
    deadlock. Settling needs the status, not the lines."""
    ids = sorted({event.order_id for event in events})
    locked = db.session.scalars(
        select(Order)
        .where(Order.id.in_(ids))
        .order_by(Order.id)
        .options(noload(Order.items))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    # Kept for the batch: the session's identity map holds objects only weakly.
    db.session.info["locked_orders"] = {order.id: order for order in locked}


def settle(event: contracts.InventoryReserved | contracts.InventoryRejected) -> list[contracts.Event]:
    """PENDING → CONFIRMED or REJECTED (with the reason). An order that is settled
    already stays as it is: a second outcome (say, OrderCreated republished and
    handled again) never overturns the first."""
    order = db.session.info["locked_orders"].get(event.order_id)
    if order is None:
        raise InvalidEvent(f"no order {event.order_id}")
    if order.status != PENDING:
        log.warning("order %s is already %s; ignoring %s", order.id, order.status, event.type)
        return []
    order.status = STATUS_FOR[event.type]
    order.reason = event.reason if isinstance(event, contracts.InventoryRejected) else None
    order.settled_at = datetime.now(UTC)
    log.info("order %s %s", order.id, order.status)
    return []
