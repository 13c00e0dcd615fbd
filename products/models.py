from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Integer, Numeric, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from common.app import make_db

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


class ProcessedEvent(db.Model):
    """Events whose effect is committed. Written in the same transaction as the
    effect, so a redelivered event finds its id here and changes nothing."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
