"""The consumer's promises, on a real broker and database, with handlers written to fail.

Its handler stores a product per note (an effect) and announces one event (an
outcome): so "committed" and "announced" can be read back from PostgreSQL.
"""

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from common.messaging import topology
from common.messaging.consumer import EventConsumer, SubscriptionMismatch
from common.messaging.event import EventType, InvalidEvent, payload
from products.models import OutboxMessage, ProcessedEvent, db
from tests.common.messaging.conftest import NOTE, Note, StoreNote, note
from tests.support import eventually, queue_depth

pytestmark = pytest.mark.integration

OUTAGE = OperationalError("SELECT 1", {}, Exception("connection refused"))


def dead_letters(broker):
    return queue_depth(broker, topology.DEAD_LETTER_QUEUE)


def fail_on(text, error):
    def fail(event):
        if event.note == text:
            raise error

    return fail


def test_a_handled_event_is_committed_announced_and_acked(consume, send, stored, broker, test_queue):
    handler = StoreNote()
    with consume(handler):
        send(note("a"))
        eventually(lambda: stored.notes() == ["a"])
        eventually(lambda: queue_depth(broker, test_queue) == 0)
    # The handler never committed: the consumer did, with the outcome and the claim.
    assert stored.announced() == ["stored a"]
    assert stored.claims() == 1


def test_a_batch_is_one_transaction_and_one_ack(consume, send, stored, broker, test_queue, products_app):
    send(*(note(str(number)) for number in range(20)))  # waiting before the consumer starts
    with consume(StoreNote(), batch_size=10):
        eventually(lambda: len(stored.notes()) == 20)
        eventually(lambda: queue_depth(broker, test_queue) == 0)
    # A claim's processed_at is its transaction's start (now()): two transactions of ten.
    with products_app.app_context():
        per_transaction = db.session.execute(
            select(func.count()).select_from(ProcessedEvent).group_by(ProcessedEvent.processed_at)
        ).scalars()
        assert sorted(per_transaction) == [10, 10]
    assert len(stored.announced()) == 20


def test_an_event_twice_in_one_batch_takes_effect_once(consume, send, stored, broker, test_queue):
    handler = StoreNote()
    twice = note("twice")
    send(twice, twice, note("other"))
    with consume(handler):
        eventually(lambda: stored.notes() == ["other", "twice"])
        eventually(lambda: queue_depth(broker, test_queue) == 0)
    assert sorted(handler.calls) == ["other", "twice"]


def test_a_poison_message_in_a_batch_is_dead_lettered_alone(consume, send, stored, broker, test_queue):
    handler = StoreNote(fail=fail_on("poison", InvalidEvent("no such thing")))
    send(note("before"), note("poison"), note("after"))
    with consume(handler):
        eventually(lambda: dead_letters(broker) == 1)
        eventually(lambda: stored.notes() == ["after", "before"])
    dead = topology.DEAD_LETTER_QUEUE(broker.default_channel).get(no_ack=True)
    assert dead.payload["note"] == "poison"
    assert dead.headers["x-death"][0]["reason"] == "rejected"


def test_an_invalid_message_is_dead_lettered_before_any_handler_sees_it(consume, send_raw, send, stored, broker):
    handler = StoreNote()
    with consume(handler):
        send_raw(b'{"event_id": "not-a-uuid", "type": "test.note", "version": 1}')
        send_raw(b"\x80not json", content_type="application/x-python-serialize")
        send(note("fine"))
        eventually(lambda: dead_letters(broker) == 2)
        eventually(lambda: stored.notes() == ["fine"])
    assert handler.calls == ["fine"]


def test_a_failing_event_is_retried_a_bounded_number_of_times_then_dead_lettered(consume, send, broker):
    handler = StoreNote(fail=fail_on("bad", RuntimeError("boom")))
    with consume(handler):
        send(note("bad"))
        eventually(lambda: dead_letters(broker) == 1, deadline=30)
    # The first delivery plus one per allowed retry, then the dead-letter queue.
    assert handler.calls == ["bad"] * (topology.DELIVERY_LIMIT + 1)
    dead = topology.DEAD_LETTER_QUEUE(broker.default_channel).get(no_ack=True)
    assert dead.headers[topology.RETRIES_HEADER] == topology.DELIVERY_LIMIT
    assert dead.headers["x-death"][0]["queue"] == "test.notes"


def test_a_failing_event_holds_up_no_other_while_it_waits_for_its_retry(consume, send, stored, broker):
    # It used to be retried after a pause inside the consumer's loop: every other
    # message waited behind it (12-18 s a bad message, at the stack's max_pause).
    handler = StoreNote(fail=fail_on("bad", RuntimeError("boom")))
    with consume(handler, max_pause=5.0):
        send(note("bad"))
        # Its third failure: its next wait (the backoff's 2 s) begins.
        eventually(lambda: handler.calls.count("bad") == 3, deadline=10)
        send(note("after"))
        eventually(lambda: stored.notes() == ["after"], deadline=1)
        # Meanwhile "bad" waits in the retry queue, then comes back.
        eventually(lambda: handler.calls.count("bad") == 4, deadline=10)


def test_a_failing_event_in_a_batch_holds_back_no_other(consume, send, stored, broker):
    handler = StoreNote(fail=fail_on("bad", RuntimeError("boom")))
    send(note("one"), note("bad"), note("two"))
    with consume(handler):
        eventually(lambda: stored.notes() == ["one", "two"])
        eventually(lambda: dead_letters(broker) == 1, deadline=30)


def test_a_database_outage_is_waited_out_without_using_deliveries(consume, send, stored, broker, test_queue):
    outages = iter(range(3))

    def fail(event):
        if next(outages, None) is not None:
            raise OUTAGE

    handler = StoreNote(fail=fail)
    with consume(handler):
        send(note("patient"))
        eventually(lambda: stored.notes() == ["patient"])
        eventually(lambda: queue_depth(broker, test_queue) == 0)
    assert len(handler.calls) == 4
    assert dead_letters(broker) == 0


def test_an_outage_longer_than_the_budget_gives_the_message_back(consume, send, broker):
    handler = StoreNote(fail=fail_on("doomed", OUTAGE))
    with consume(handler, transient_budget=0.2):
        send(note("doomed"))
        eventually(lambda: dead_letters(broker) == 1, deadline=30)


def test_a_handler_that_commits_is_refused(consume, send, stored, broker):
    # A commit inside a handler would commit half a batch, and the claims of events
    # not yet handled: the consumer refuses it, and nothing of the event is kept.
    def commit_early(event):
        db.session.commit()

    with consume(StoreNote(fail=commit_early)):
        send(note("eager"))
        eventually(lambda: dead_letters(broker) == 1, deadline=30)
    assert stored.notes() == [] and stored.claims() == 0


def test_nothing_is_acked_before_its_commit(consume, send, stored, broker, test_queue, products_app):
    # The first commit fails (as when the database goes away mid-commit): the
    # effect is gone, and the message, not acked, comes back and is handled.
    failed = []

    def fail_first_commit(session):
        if not failed:
            failed.append(True)
            raise RuntimeError("the commit did not happen")

    with products_app.app_context():
        sqlalchemy_event.listen(db.session, "before_commit", fail_first_commit)
    try:
        handler = StoreNote()
        with consume(handler):
            send(note("kept"))
            eventually(lambda: stored.notes() == ["kept"])
            eventually(lambda: queue_depth(broker, test_queue) == 0)
    finally:
        with products_app.app_context():
            sqlalchemy_event.remove(db.session, "before_commit", fail_first_commit)
    assert handler.calls == ["kept", "kept"]
    assert stored.announced() == ["stored kept"]


def test_an_older_consumer_takes_a_newer_event_with_an_added_field(consume, send, stored, broker, test_queue):
    newer = {**payload(note("from the future")), "colour": "green"}  # a field this consumer doesn't know
    with consume(StoreNote()):
        send(newer)
        eventually(lambda: stored.notes() == ["from the future"])
    assert dead_letters(broker) == 0


OTHER_NOTE = EventType("test.other-note", 1, {1: Note})


@pytest.mark.parametrize(
    "bound, handled",
    [
        ((NOTE, OTHER_NOTE), (NOTE,)),  # bound, not handled: it would be dead-lettered
        ((NOTE,), (NOTE, OTHER_NOTE)),  # handled, not bound: it would never arrive
    ],
)
def test_a_consumer_refuses_to_start_when_its_handlers_and_its_queues_bindings_disagree(amqp_url, bound, handled):
    queue = topology.subscription("test.mismatch", *bound)
    with pytest.raises(SubscriptionMismatch, match="test.mismatch is bound to"):
        EventConsumer(
            amqp_url,
            db,
            queue,
            {event_type: StoreNote() for event_type in handled},
            processed=ProcessedEvent,
            outbox_model=OutboxMessage,
        )
