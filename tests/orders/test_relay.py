"""The outbox relay against real PostgreSQL and RabbitMQ."""
import json
import threading

import pytest

from common import queues
from common.events import Publisher, new_event
from common.outbox import OutboxRelay, enqueue
from orders.models import OutboxMessage, db
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def outbox(orders_app, client):
    """Add events to the orders outbox, and read its rows back."""

    class Outbox:
        def add(self, count=1):
            events = [new_event(queues.ORDER_CREATED, order_id=i + 1, user_id=1, items=[]) for i in range(count)]
            with orders_app.app_context():
                for event in events:
                    enqueue(db.session, OutboxMessage, event)
                db.session.commit()
            return events

        def rows(self):
            with orders_app.app_context():
                rows = db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id)).all()
                db.session.expunge_all()
                return rows

    return Outbox()


@pytest.fixture
def relay(orders_app, amqp_url):
    made = []

    def _relay(url=amqp_url):
        made.append(OutboxRelay(db, OutboxMessage, Publisher(url)))
        return made[-1]

    yield _relay
    for instance in made:
        instance.publisher.close()


def received(broker, queue=queues.PRODUCTS_ORDER_CREATED):
    bound = queue(broker.default_channel)
    messages = []
    while (message := bound.get(no_ack=True)) is not None:
        messages.append(json.loads(message.body))
    return messages


def test_unsent_rows_are_published_and_marked_sent(orders_app, outbox, relay, broker):
    events = outbox.add(3)
    with orders_app.app_context():
        assert relay().relay_batch() == (3, False)
    assert [m["event_id"] for m in received(broker)] == [e["event_id"] for e in events]
    assert all(row.published_at is not None for row in outbox.rows())
    with orders_app.app_context():
        assert relay().relay_batch() == (0, False)  # nothing is published twice
    assert received(broker) == []


def test_a_broker_that_is_away_keeps_the_row_for_a_retry(orders_app, outbox, relay, broker, closed_port):
    [event] = outbox.add()
    with orders_app.app_context():
        assert relay(f"amqp://guest:guest@127.0.0.1:{closed_port}//").relay_batch() == (0, True)
    [row] = outbox.rows()
    assert (row.published_at, row.attempts) == (None, 1)
    assert row.last_error and row.next_attempt_at > row.created_at

    with orders_app.app_context():
        db.session.execute(db.update(OutboxMessage).values(next_attempt_at=db.func.now()))
        db.session.commit()
        assert relay().relay_batch() == (1, False)
    assert [m["event_id"] for m in received(broker)] == [event["event_id"]]


def test_concurrent_relays_skip_each_others_rows(orders_app, outbox, relay, broker):
    outbox.add(2)
    locked, release = threading.Event(), threading.Event()

    def hold_the_rows():
        # Another relay mid-batch: it holds the rows' locks until told to go on.
        with orders_app.app_context():
            db.session.scalars(db.select(OutboxMessage).with_for_update()).all()
            locked.set()
            release.wait(10)
            db.session.rollback()

    holder = threading.Thread(target=hold_the_rows)
    holder.start()
    try:
        assert locked.wait(10)
        with orders_app.app_context():
            assert relay().relay_batch() == (0, False)  # skipped, not blocked and not doubled
    finally:
        release.set()
        holder.join()
    with orders_app.app_context():
        assert relay().relay_batch() == (2, False)
    assert len(received(broker)) == 2


def test_a_relay_loop_drains_the_outbox_and_stops_when_asked(orders_app, outbox, relay, broker):
    from tests.support import running

    outbox.add(5)
    with running(relay(), orders_app):
        eventually(lambda: all(row.published_at for row in outbox.rows()))
    assert len(received(broker)) == 5
