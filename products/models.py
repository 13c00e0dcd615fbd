from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Integer, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from common.database import make_db
from common.messaging.idempotency import ProcessedEventMixin
from common.messaging.outbox import OutboxMixin

db = make_db()


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (
        # The last line of defence: whatever the code does, stock never goes negative.
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("price > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    quantity: Mapped[int] = mapped_column(Integer)
    # Who created it (the gateway-verified user id); kept for ownership rules.
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProcessedEvent(ProcessedEventMixin, db.Model):
    """OrderCreated events whose outcome is committed."""


class OutboxMessage(OutboxMixin, db.Model):
    """InventoryReserved/InventoryRejected events, written with the stock change."""
