from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    String,
    Text,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.database import make_db
from common.http.idempotency_keys import IdempotencyKeyMixin
from common.messaging.idempotency import ProcessedEventMixin
from common.messaging.outbox import OutboxMixin

db = make_db()

# An order is PENDING until products-worker has tried to reserve its stock, then
# CONFIRMED or REJECTED; its buyer may cancel it while it is PENDING or
# CONFIRMED. REJECTED and CANCELLED are for good. The two transitions are
# Order.cancel below and orders.settlement.Settling.settle (orders-worker
# settles plain values, not Order objects), and nowhere else.
PENDING, CONFIRMED, REJECTED, CANCELLED = "PENDING", "CONFIRMED", "REJECTED", "CANCELLED"


class NotCancellable(Exception):
    pass


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(f"status IN ('{PENDING}', '{CONFIRMED}', '{REJECTED}', '{CANCELLED}')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The gateway-verified caller; every read filters on it.
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Why it was rejected, in words a buyer can read.
    reason: Mapped[str | None] = mapped_column(Text)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # False for orders placed before cancelling existed: products kept no record
    # of what they took, so it couldn't give it back (orders/cancelling.py).
    cancellable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    items: Mapped[list["OrderItem"]] = relationship(
        back_populates="order", order_by="OrderItem.id", cascade="all, delete-orphan", lazy="selectin"
    )

    def cancel(self) -> bool:
        """PENDING or CONFIRMED → CANCELLED; False if it was cancelled already (a
        retry changes nothing). NotCancellable otherwise."""
        if self.status == CANCELLED:
            return False
        if self.status not in (PENDING, CONFIRMED):
            raise NotCancellable(f"A {self.status} order can't be cancelled.")
        if not self.cancellable:
            raise NotCancellable("This order was placed before orders could be cancelled.")
        self.status, self.cancelled_at = CANCELLED, datetime.now(UTC)
        return True


class OrderItem(db.Model):
    __tablename__ = "order_items"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    # A product id in the products service's database: no foreign key across services.
    product_id: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    # The price when ordered; the catalog's price may change later.
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))

    order: Mapped[Order] = relationship(back_populates="items")


class ProcessedEvent(ProcessedEventMixin, db.Model):
    """Inventory events whose settlement is committed."""


class OutboxMessage(OutboxMixin, db.Model):
    """OrderCreated and OrderCancelled events, written with the change they announce."""


class IdempotencyKey(IdempotencyKeyMixin, db.Model):
    """The answers to POST /orders sent with an Idempotency-Key."""
