"""Settling an order with the inventory outcome: exactly once, never undone.

orders-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py); the consumer commits and acks. As in products'
inventory, the batch's orders are loaded and locked once and settled in memory;
the commit writes each changed order once.

Only a PENDING order is ever settled: a CANCELLED one stays CANCELLED whatever
outcome arrives later (the buyer may cancel while the reservation is in
flight), and a settled one is never overturned.

Each settlement's lag (settled_at - created_at) goes to the
shop_order_settlement_lag_seconds histogram when, and only if, its transaction
commits: a batch that rolls back and is retried counts once.
"""

import logging

from sqlalchemy.orm import noload

from common import metrics
from common.database import lock_rows
from common.events import contracts
from common.messaging.event import InvalidEvent
from orders.models import CONFIRMED, REJECTED, Order, db

log = logging.getLogger(__name__)

STATUS_FOR = {contracts.INVENTORY_RESERVED.routing_key: CONFIRMED, contracts.INVENTORY_REJECTED.routing_key: REJECTED}
LAGS = "settlement_lags"  # the session's info key: lags of this transaction, observed at its commit


def lock_orders(events: list[contracts.Event]) -> dict[int, Order]:
    """Load and lock the batch's orders in id order, so two workers' batches can't
    deadlock: {id: order}, which the consumer hands to each handler of the batch.
    Settling needs the status, not the lines."""
    return lock_rows(db.session, Order.id, (event.order_id for event in events), noload(Order.items))


def settle(
    event: contracts.InventoryReserved | contracts.InventoryRejected, orders: dict[int, Order]
) -> list[contracts.Event]:
    """PENDING → CONFIRMED or REJECTED (with the reason); any other status stays:
    CANCELLED, or settled already (say, OrderCreated republished and handled again)."""
    order = orders.get(event.order_id)
    if order is None:
        raise InvalidEvent(f"no order {event.order_id}")
    reason = event.reason if isinstance(event, contracts.InventoryRejected) else None
    if not order.settle(STATUS_FOR[event.type], reason):
        log.warning("order %s is already %s; ignoring %s", order.id, order.status, event.type)
        return []
    db.session.info.setdefault(LAGS, []).append((order.settled_at - order.created_at).total_seconds())
    log.info("order %s %s", order.id, order.status)
    return []


def observe_lags(session) -> None:
    """after_commit: the committed settlements' lags go to the histogram."""
    for lag in session.info.pop(LAGS, []):
        metrics.SETTLEMENT_LAG.observe(lag)


def forget_lags(session) -> None:
    """after_rollback: those settlements didn't happen."""
    session.info.pop(LAGS, None)
