from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Index, Integer, Numeric, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.database import make_db
from common.http.idempotency_keys import IdempotencyKeyMixin
from common.messaging.idempotency import DUPLICATE_WINDOW, ProcessedEventMixin
from common.messaging.outbox import OutboxMixin
from common.retention import Retention

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
    # BIGINT although the API keeps the shelf within 2**31 - 1 (products/schemas.py):
    # cancelled orders give their units back on top of it, and that must never overflow.
    quantity: Mapped[int] = mapped_column(BigInteger)
    # Who created it (the gateway-verified user id): the only one who may change it.
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Counts the changes to what PATCH edits (name, price): the ETag. Stock is not
    # part of it, so a price correction doesn't fail because someone bought one.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


# What products-worker did for an order (products/inventory.py says why it is kept).
RESERVED, REJECTED, RELEASED, CANCELLED = "RESERVED", "REJECTED", "RELEASED", "CANCELLED"


class Reservation(db.Model):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(f"status IN ('{RESERVED}', '{REJECTED}', '{RELEASED}', '{CANCELLED}')", name="status_known"),
        Index("ix_reservations_settled", "recorded_at", postgresql_where=text("status <> 'RESERVED'")),
    )

    # An order id in the orders service's database: no foreign key across services.
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # RESERVED: stock taken; REJECTED: none taken; RELEASED: taken, then given back;
    # CANCELLED: cancelled before its reservation, so none will ever be taken.
    status: Mapped[str] = mapped_column(String(16))
    # The lines whose stock was taken ([{product_id, quantity}]): what a cancellation gives back.
    taken: Mapped[list] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# A settled reservation is pruned once no event can touch it any more: every
# event about its order is older than the duplicate window by then, and so
# refused (common/messaging/idempotency.py). A RESERVED one is what a cancel
# gives back, and an order can be cancelled at any age: it stays.
SETTLED_RESERVATIONS = Retention(Reservation.recorded_at, DUPLICATE_WINDOW, only=Reservation.status != RESERVED)


class ProcessedEvent(ProcessedEventMixin, db.Model):
    """Order events whose effect is committed."""


class OutboxMessage(OutboxMixin, db.Model):
    """InventoryReserved/InventoryRejected events, written with the stock change."""


class IdempotencyKey(IdempotencyKeyMixin, db.Model):
    """The answers to POST /products sent with an Idempotency-Key."""
