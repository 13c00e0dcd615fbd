"""Settling an order with the inventory outcome: exactly once, never undone.

orders-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py); the consumer commits and acks.
"""

import logging

from sqlalchemy import bindparam, func, select, update

from common.messaging import contracts
from common.messaging.contracts import InvalidEvent
from orders.models import CONFIRMED, PENDING, REJECTED, Order, db

log = logging.getLogger(__name__)

STATUS_FOR = {contracts.INVENTORY_RESERVED.routing_key: CONFIRMED, contracts.INVENTORY_REJECTED.routing_key: REJECTED}

# Built once: on this hot path, building a statement costs more than running it.
_orders = Order.__table__
_LOCK = (
    select(_orders.c.id)
    .where(_orders.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_orders.c.id)
    .with_for_update()
)
_SETTLE = (
    update(_orders)
    .where(_orders.c.id == bindparam("order_id"), _orders.c.status == PENDING)
    .values(status=bindparam("status"), reason=bindparam("reason"), settled_at=func.now())
    .returning(_orders.c.id)
)
_STATUS = select(_orders.c.status).where(_orders.c.id == bindparam("order_id"))


def lock_orders(events: list[dict]) -> None:
    """Lock the batch's orders in id order, so two workers' batches can't deadlock."""
    db.session.connection().execute(_LOCK, {"ids": sorted({event["order_id"] for event in events})})


def settle(event: dict) -> list[dict]:
    """PENDING → CONFIRMED or REJECTED (with the reason). An order that is settled
    already stays as it is: a second outcome (say, OrderCreated republished and
    handled again) never overturns the first."""
    status = STATUS_FOR[event["type"]]
    connection = db.session.connection()
    settled = connection.execute(
        _SETTLE, {"order_id": event["order_id"], "status": status, "reason": event.get("reason")}
    ).first()
    if settled is not None:
        log.info("order %s %s", event["order_id"], status)
        return []
    current = connection.execute(_STATUS, {"order_id": event["order_id"]}).scalar()
    if current is None:
        raise InvalidEvent(f"no order {event['order_id']}")
    log.warning("order %s is already %s; ignoring %s", event["order_id"], current, event["type"])
    return []
