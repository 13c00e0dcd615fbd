"""Idempotent consumers: each event's effect is applied at most once.

The consumer claims the event ids of a batch in the same transaction as their
effects. An id already there means an earlier delivery committed its effect:
change nothing, ack. If the transaction rolls back, the claims go with it and
a redelivery tries again.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import DateTime, Uuid, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column


class ProcessedEventMixin:
    """Columns of a service's processed_events table (`class ProcessedEvent(ProcessedEventMixin, db.Model)`)."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def claim(session: Session, model: type[ProcessedEventMixin], event_ids: Sequence[str]) -> set[str]:
    """The ids among `event_ids` that this transaction is the first to handle.

    One statement for the whole batch. A concurrent transaction claiming one of
    the same ids waits on the primary key until the first commits (then the id
    isn't returned here) or rolls back (then it is).
    """
    if not event_ids:
        return set()
    inserted = session.execute(
        insert(model)
        .values([{"event_id": event_id} for event_id in dict.fromkeys(event_ids)])
        .on_conflict_do_nothing()
        .returning(model.event_id)
    )
    return set(inserted.scalars())
