"""Settling an order with the inventory outcome: exactly once, never undone.

orders-worker calls these inside the transaction its consumer owns
(common/messaging/consumer.py); the consumer commits and acks. As in products'
inventory, the batch's orders are loaded and locked once, in id order, and
settled in memory; Locked.save then writes every settled order in one
`UPDATE … FROM unnest()`. This is the worker's whole loop, so it works on plain
values with prepared Core statements, not ORM objects: the ORM's lock, identity
map and flush were most of the worker's CPU (docs/benchmarks.md).

Only a PENDING order is ever settled (Settling.settle): a CANCELLED one stays
CANCELLED whatever outcome arrives later (the buyer may cancel while the
reservation is in flight), and a settled one is never overturned.

Each settlement's lag (settled_at - created_at) goes to the
shop_order_settlement_lag_seconds histogram when, and only if, its transaction
commits: a batch that rolls back and is retried counts once.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, String, Text, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from common import metrics
from common.database import any_id
from common.events import contracts
from common.messaging.event import InvalidEvent
from orders.models import CONFIRMED, PENDING, REJECTED, Order, db

log = logging.getLogger(__name__)

STATUS_FOR = {contracts.INVENTORY_RESERVED.routing_key: CONFIRMED, contracts.INVENTORY_REJECTED.routing_key: REJECTED}
LAGS = "settlement_lags"  # the session's info key: lags of this transaction, observed at its commit


# Built once: on this path building a statement costs more than running it.
_orders = Order.__table__
_LOCK = (
    select(_orders.c.id, _orders.c.status, _orders.c.created_at)
    .where(_orders.c.id == any_id("ids"))
    .order_by(_orders.c.id)
    .with_for_update()
)
_outcomes = (
    func.unnest(
        bindparam("ids", type_=ARRAY(BigInteger)),
        bindparam("statuses", type_=ARRAY(String)),
        bindparam("reasons", type_=ARRAY(Text)),
        bindparam("settled_at", type_=ARRAY(DateTime(timezone=True))),
    )
    .table_valued("id", "status", "reason", "settled_at")
    .render_derived(name="outcomes")
)
_SETTLE = (
    update(_orders)
    .where(_orders.c.id == _outcomes.c.id)
    .values(status=_outcomes.c.status, reason=_outcomes.c.reason, settled_at=_outcomes.c.settled_at)
)


@dataclass
class Settling:
    """An order as settling sees it: its status when locked, and its outcome once settled."""

    status: str
    created_at: datetime
    reason: str | None = None
    settled_at: datetime | None = None

    def settle(self, status: str, reason: str | None = None) -> bool:
        """PENDING → CONFIRMED, or REJECTED with the reason; False (and nothing
        changes) for any other status: a CANCELLED order stays cancelled whatever
        outcome arrives later, and a settled one is never overturned."""
        if self.status != PENDING:
            return False
        self.status, self.reason, self.settled_at = status, reason, datetime.now(UTC)
        return True


@dataclass
class Locked:
    """A batch's orders, loaded and locked by lock_orders, {id: Settling} (an id
    that names no order is missing); the handlers settle them in memory, and
    save() writes those they settled."""

    orders: dict[int, Settling]
    settled: list[int] = field(default_factory=list)

    def save(self) -> None:
        if not self.settled:
            return
        orders = [self.orders[order_id] for order_id in self.settled]
        db.session.connection().execute(
            _SETTLE,
            {
                "ids": self.settled,
                "statuses": [order.status for order in orders],
                "reasons": [order.reason for order in orders],
                "settled_at": [order.settled_at for order in orders],
            },
        )


def lock_orders(events: list[contracts.Event]) -> Locked:
    """Load and lock the batch's orders in id order, so two workers' batches can't
    deadlock; the consumer hands them to each handler of the batch, and saves them
    once they are done. Settling needs the status, not the lines."""
    rows = db.session.connection().execute(_LOCK, {"ids": sorted({event.order_id for event in events})})
    return Locked({order_id: Settling(status, created_at) for order_id, status, created_at in rows})


def settle(event: contracts.InventoryReserved | contracts.InventoryRejected, locked: Locked) -> list[contracts.Event]:
    """PENDING → CONFIRMED or REJECTED (with the reason); any other status stays:
    CANCELLED, or settled already (say, OrderCreated republished and handled again)."""
    order = locked.orders.get(event.order_id)
    if order is None:
        raise InvalidEvent(f"no order {event.order_id}")
    reason = event.reason if isinstance(event, contracts.InventoryRejected) else None
    if not order.settle(STATUS_FOR[event.type], reason):
        log.warning("order %s is already %s; ignoring %s", event.order_id, order.status, event.type)
        return []
    locked.settled.append(event.order_id)
    db.session.info.setdefault(LAGS, []).append((order.settled_at - order.created_at).total_seconds())
    log.info("order %s %s", event.order_id, order.status)
    return []


def observe_lags(session) -> None:
    """after_commit: the committed settlements' lags go to the histogram."""
    for lag in session.info.pop(LAGS, []):
        metrics.SETTLEMENT_LAG.observe(lag)


def forget_lags(session) -> None:
    """after_rollback: those settlements didn't happen."""
    session.info.pop(LAGS, None)
