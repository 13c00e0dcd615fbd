"""How long the bookkeeping tables keep their rows, and the pruning that enforces it.

Each table that records what was done so that it isn't done twice would grow
for ever. Each is kept exactly as long as its guarantee needs it, then pruned by
the service's outbox relay, at most once a minute (common/messaging/relay.py):

    outbox            sent rows, 1 day     only for inspection: a sent row is never read again
    idempotency_keys  the key's TTL        an expired key is treated as new anyway (common/http/idempotency_keys.py)
    processed_events  DUPLICATE_WINDOW     an older event is refused, not applied (common/messaging/idempotency.py)

and what a service adds of its own (products: its settled reservations).
Rows go in batches, each its own short transaction, so a first prune of a large
table neither holds locks for long nor builds one huge transaction.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, ColumnElement, bindparam, delete, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from common.http.idempotency_keys import IdempotencyKeyMixin
from common.messaging.idempotency import DUPLICATE_WINDOW, ProcessedEventMixin
from common.messaging.outbox import OutboxMixin
from common.settings import Settings

log = logging.getLogger(__name__)

SENT_EVENTS_KEPT = timedelta(days=1)
BATCH = 5000
# A round is bounded, so that a large backlog (the first prune of an old
# database) doesn't hold up the relay's publishing: it goes over several rounds,
# between batches of events. 50,000 rows a table a round outpaces what this
# system writes in the minute between two rounds.
BATCHES_PER_ROUND = 10


@dataclass(frozen=True)
class Retention:
    """Rows whose `column` (a time, indexed) is older than `keep`, and that match `only`, go."""

    column: Column
    keep: timedelta
    only: ColumnElement[bool] | None = None

    @property
    def table(self) -> str:
        return self.column.table.name

    def statement(self) -> Executable:
        table = self.column.table
        # By ctid, the row's physical address: one shape for every table, whatever its primary key.
        ctid = literal_column("ctid")
        doomed = select(ctid).select_from(table).where(self.column < bindparam("before"))
        if self.only is not None:
            doomed = doomed.where(self.only)
        doomed = doomed.limit(BATCH)
        return delete(table).where(ctid.in_(doomed.scalar_subquery()))


def bookkeeping(
    settings: Settings,
    *,
    outbox: type[OutboxMixin],
    processed_events: type[ProcessedEventMixin],
    idempotency_keys: type[IdempotencyKeyMixin],
) -> list[Retention]:
    """The retentions of the tables every service with events and keys has."""
    return [
        Retention(outbox.published_at, SENT_EVENTS_KEPT),
        Retention(idempotency_keys.created_at, timedelta(seconds=settings.idempotency_key_ttl_seconds)),
        Retention(processed_events.processed_at, DUPLICATE_WINDOW),
    ]


def prune(session: Session, retentions: Sequence[Retention], batches: int = BATCHES_PER_ROUND) -> bool:
    """Delete what each retention no longer keeps, at most `batches` batches per
    table; True if some table has more to go (the caller comes back soon)."""
    more = False
    for retention in retentions:
        statement, before = retention.statement(), datetime.now(UTC) - retention.keep
        total = 0
        for _ in range(batches):
            count = session.connection().execute(statement, {"before": before}).rowcount
            session.commit()
            total += count
            if count < BATCH:
                break
        else:
            more = True
        if total:
            log.info("pruned %d rows of %s older than %s", total, retention.table, retention.keep)
    return more
