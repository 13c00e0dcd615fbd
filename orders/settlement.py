"""Settling an order with the inventory outcome: exactly once, never undone.

orders-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py); the consumer commits and acks.

Only a PENDING order is ever settled: a CANCELLED one stays CANCELLED whatever
outcome arrives later (the buyer may cancel while the reservation is in
flight), and a settled one is never overturned.

Each settlement's lag (settled_at - created_at) goes to the
shop_order_settlement_lag_seconds histogram when, and only if, its transaction
commits: a batch that rolls back and is retried counts once.
"""

import logging

from sqlalchemy import func, select, update

from common import metrics
from common.messaging import contracts
from common.messaging.contracts import InvalidEvent
from orders.models import CONFIRMED, PENDING, REJECTED, Order, db

log = logging.getLogger(__name__)

_orders = Order.__table__
LAGS = "settlement_lags"  # the session's info key: lags of this transaction, observed at its commit
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
        .returning(func.extract("epoch", _orders.c.settled_at - _orders.c.created_at))
    ).first()
    if settled is not None:
        log.info("order %s %s", event["order_id"], status)
        db.session.info.setdefault(LAGS, []).append(float(settled[0]))
        return []
    current = db.session.execute(select(_orders.c.status).where(_orders.c.id == event["order_id"])).scalar()
    if current is None:
        raise InvalidEvent(f"no order {event['order_id']}")
    log.warning("order %s is already %s; ignoring %s", event["order_id"], current, event["type"])
    return []


def observe_lags(session) -> None:
    """after_commit: the committed settlements' lags go to the histogram."""
    for lag in session.info.pop(LAGS, []):
        metrics.SETTLEMENT_LAG.observe(lag)


def forget_lags(session) -> None:
    """after_rollback: those settlements didn't happen."""
    session.info.pop(LAGS, None)
