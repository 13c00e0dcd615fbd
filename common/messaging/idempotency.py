"""Idempotent consumers: each event's effect is applied at most once.

The consumer claims the event ids of a batch in the same transaction as their
effects. An id already there means an earlier delivery committed its effect:
change nothing, ack. If the transaction rolls back, the claims go with it and
a redelivery tries again.

The ids are kept for DUPLICATE_WINDOW, then pruned (common/retention.py): a copy
is recognised as one only within it. So an event older than the window is not
applied but refused (the consumer dead-letters it): once its id may be gone, it
can't be told apart from a duplicate. Every redelivery the system makes itself
(a crash before the ack, the retry queue, a relay's second publish) comes within
seconds; only a dead letter an operator requeues days later can be that old.
"""

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import Executable

DUPLICATE_WINDOW = timedelta(days=7)


class ProcessedEventMixin:
    """Columns of a service's processed_events table (`class ProcessedEvent(ProcessedEventMixin, db.Model)`)."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    # Indexed for the pruning (common/retention.py).
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


@functools.cache
def _claim_statement(model: type[ProcessedEventMixin]) -> Executable:
    # INSERT … SELECT unnest(:ids): one statement of one shape for a batch of any
    # size, so it is compiled once.
    table = model.__table__
    ids = func.unnest(bindparam("ids", type_=ARRAY(Uuid(as_uuid=False))))
    return insert(table).from_select(["event_id"], select(ids)).on_conflict_do_nothing().returning(table.c.event_id)


def claim(session: Session, model: type[ProcessedEventMixin], event_ids: Sequence[str]) -> set[str]:
    """The ids among `event_ids` that this transaction is the first to handle.

    One statement for the whole batch. A concurrent transaction claiming one of
    the same ids waits on the primary key until the first commits (then the id
    isn't returned here) or rolls back (then it is).
    """
    if not event_ids:
        return set()
    inserted = session.connection().execute(_claim_statement(model), {"ids": list(dict.fromkeys(event_ids))})
    return set(inserted.scalars())


def too_old(occurred_at: datetime) -> bool:
    """Whether an event from then is past the window in which duplicates are recognised."""
    return occurred_at < datetime.now(UTC) - DUPLICATE_WINDOW
