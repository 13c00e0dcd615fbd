"""Idempotent consumers: each event's effect is applied at most once.

A consumer claims the event id in the same transaction as the effect. If the id
is already there, an earlier delivery committed the effect: change nothing and
ack. If the transaction rolls back, the claim goes with it and a redelivery tries
again.
"""
from datetime import datetime

from sqlalchemy import DateTime, Uuid, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column


class ProcessedEventMixin:
    """Columns of a service's processed_events table (`class ProcessedEvent(ProcessedEventMixin, db.Model)`)."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def claim(session: Session, model: type[ProcessedEventMixin], event_id: str) -> bool:
    """True if this transaction is the first to handle `event_id`.

    A concurrent transaction claiming the same id waits on the primary key until
    the first commits (then this returns False) or rolls back (then True).
    """
    inserted = session.execute(
        insert(model).values(event_id=event_id).on_conflict_do_nothing().returning(model.event_id)
    )
    return inserted.scalar_one_or_none() is not None
