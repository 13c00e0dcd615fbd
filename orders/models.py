from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, Integer, Numeric, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.database import make_db
from common.messaging.idempotency import ProcessedEventMixin
from common.messaging.outbox import OutboxMixin

db = make_db()

# An order is PENDING until products-worker has tried to reserve its stock, then
# CONFIRMED or REJECTED for good.
PENDING, CONFIRMED, REJECTED = "PENDING", "CONFIRMED", "REJECTED"


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (CheckConstraint(f"status IN ('{PENDING}', '{CONFIRMED}', '{REJECTED}')", name="status_known"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The gateway-verified caller; every read filters on it.
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Why it was rejected, in words a buyer can read.
    reason: Mapped[str | None] = mapped_column(Text)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    items: Mapped[list["OrderItem"]] = relationship(
        back_populates="order", order_by="OrderItem.id", cascade="all, delete-orphan", lazy="selectin"
    )


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
    """OrderCreated events, written with the order."""
