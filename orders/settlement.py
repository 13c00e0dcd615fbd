"""Settling an order with the inventory outcome: exactly once, never undone.

orders-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py); the consumer commits and acks.
"""

import logging

from sqlalchemy import func, select, update

from common.messaging import contracts
from common.messaging.contracts import InvalidEvent
from orders.models import CONFIRMED, PENDING, REJECTED, Order, db

log = logging.getLogger(__name__)

_orders = Order.__table__
STATUS_FOR = {contracts.INVENTORY_RESERVED.routing_key: CONFIRMED, contracts.INVENTORY_REJECTED.routing_key: REJECTED}


def lock_orders(events: list[dict]) -> None:
    """Lock the batch's orders in id order, so two workers' batches can't deadlock."""
    ids = sorted({event["order_id"] for event in events})
    db.session.execute(select(_orders.c.id).where(_orders.c.id.in_(ids)).order_by(_orders.c.id).with_for_update())


def settle(event: dict) -> list[dict]:
    """PENDING → CONFIRMED or REJECTED (with the reason). An order that is settled
    already stays as it is: a second outcome (say, OrderCreated republished and
    handled again) never overturns the first."""
    status = STATUS_FOR[event["type"]]
    settled = db.session.execute(
        update(_orders)
        .where(_orders.c.id == event["order_id"], _orders.c.status == PENDING)
        .values(status=status, reason=event.get("reason"), settled_at=func.now())
        .returning(_orders.c.id)
    ).first()
    if settled is not None:
        log.info("order %s %s", event["order_id"], status)
        return []
    current = db.session.execute(select(_orders.c.status).where(_orders.c.id == event["order_id"])).scalar()
    if current is None:
        raise InvalidEvent(f"no order {event['order_id']}")
    log.warning("order %s is already %s; ignoring %s", event["order_id"], current, event["type"])
    return []
