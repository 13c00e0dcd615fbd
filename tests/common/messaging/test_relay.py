"""The outbox relay against real PostgreSQL and RabbitMQ (the orders service's outbox)."""

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update

from common.events import contracts, queues
from common.messaging import outbox
from common.messaging.publisher import Publisher
from common.messaging.relay import OutboxRelay
from orders import relay as orders_relay
from orders.models import OutboxMessage, ProcessedEvent, db
from tests.support import eventually, running

pytestmark = pytest.mark.integration

# The relay's LISTEN connection, seen from PostgreSQL: in this database, not ours.
LISTENING_BACKENDS = text(
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
)


@pytest.fixture
def orders_outbox(orders_app, clean_orders):
    """Add events to the orders outbox as a producing transaction does, and read its rows back."""

    class Outbox:
        def add(self, count=1, notify=True):
            """As a producer does: the events in a transaction, whose commit NOTIFYs the
            relays. Without `notify`, the same rows written behind outbox.add's back:
            a commit whose NOTIFY is lost."""
            events = [
                contracts.ORDER_CREATED.new(order_id=i + 1, user_id=1, items=[{"product_id": 1, "quantity": 1}])
                for i in range(count)
            ]
            messages = [outbox.message(event) for event in events]
            with orders_app.app_context():
                if notify:
                    outbox.add(db.session, OutboxMessage, messages)
                else:
                    rows = [
                        {"event_id": m.event["event_id"], "routing_key": m.routing_key, "payload": m.event}
                        for m in messages
                    ]
                    db.session.execute(outbox.statements(OutboxMessage).add, rows)
                db.session.commit()
            return events

        def rows(self):
            with orders_app.app_context():
                rows = db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id)).all()
                db.session.expunge_all()
                return rows

        def all_sent(self):
            return all(row.published_at for row in self.rows())

    return Outbox()


@pytest.fixture
def relay(orders_app, amqp_url):
    made = []

    def _relay(url=amqp_url, **options):
        made.append(OutboxRelay(db, OutboxMessage, Publisher(url, queues.DECLARED), **options))
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


def test_unsent_rows_are_published_in_one_batch_and_marked_sent(orders_app, orders_outbox, relay, broker):
    events = orders_outbox.add(3)
    with orders_app.app_context():
        assert relay().relay_batch() == (3, False)
    assert [m["event_id"] for m in received(broker)] == [str(e.event_id) for e in events]
    assert orders_outbox.all_sent()
    with orders_app.app_context():
        assert relay().relay_batch() == (0, False)  # nothing is published twice
    assert received(broker) == []


def test_a_backlog_goes_out_batch_after_batch(orders_app, orders_outbox, relay, broker):
    orders_outbox.add(25)
    with orders_app.app_context():
        assert relay(batch_size=10).relay_due() is False
    assert len(received(broker)) == 25
    assert orders_outbox.all_sent()


def test_a_broker_that_is_away_keeps_the_rows_for_a_retry(orders_app, orders_outbox, relay, broker, closed_port):
    [event] = orders_outbox.add()
    with orders_app.app_context():
        assert relay(f"amqp://guest:guest@127.0.0.1:{closed_port}//").relay_batch() == (0, True)
    [row] = orders_outbox.rows()
    assert (row.published_at, row.attempts) == (None, 1)
    assert row.last_error and row.next_attempt_at > row.created_at

    with orders_app.app_context():
        db.session.execute(update(OutboxMessage).values(next_attempt_at=func.now()))
        db.session.commit()
        assert relay().relay_batch() == (1, False)
    assert [m["event_id"] for m in received(broker)] == [str(event.event_id)]


def test_concurrent_relays_skip_each_others_rows(orders_app, orders_outbox, relay, broker):
    orders_outbox.add(2)
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


def test_a_commit_wakes_the_relay_within_milliseconds(orders_app, orders_outbox, relay, broker):
    # The poll is a minute away: only the NOTIFY of the producing commit can be
    # what wakes it.
    loop = relay(poll_seconds=60)
    with running(loop, orders_app):
        orders_outbox.add()
        eventually(orders_outbox.all_sent)  # the first is sent: the relay waits for news now
        committed = time.monotonic()
        orders_outbox.add()
        eventually(orders_outbox.all_sent, deadline=5, interval=0.005)
        latency = time.monotonic() - committed
    assert latency < 1.0, f"published {latency:.3f}s after the commit"
    assert len(received(broker)) == 2


def test_a_lost_notification_is_caught_up_by_the_poll(orders_app, orders_outbox, relay, broker):
    loop = relay(poll_seconds=0.5)
    with running(loop, orders_app):
        orders_outbox.add()
        eventually(orders_outbox.all_sent)  # the relay waits for news now
        orders_outbox.add(notify=False)  # committed, but its NOTIFY lost
        eventually(orders_outbox.all_sent, deadline=5)
    assert len(received(broker)) == 2


def test_a_relay_listens_anew_when_its_listen_connection_breaks(orders_app, orders_outbox, relay, broker):
    # A PostgreSQL restart breaks the connection the idle relay waits on. Here only
    # that connection is ended (pg_terminate_backend, as a restart ends it); the
    # relay must listen again, not die. The poll is a minute away, so only a NOTIFY
    # on a new LISTEN connection can send the second event in time.
    def listeners() -> list[int]:
        with orders_app.app_context():
            return db.session.scalars(LISTENING_BACKENDS).all()

    loop = relay(poll_seconds=60)
    with running(loop, orders_app):
        orders_outbox.add()
        eventually(orders_outbox.all_sent)  # the relay waits for news now
        (broken,) = eventually(listeners)
        with orders_app.app_context():
            db.session.execute(select(func.pg_terminate_backend(broken)))
        eventually(lambda: (now := listeners()) and broken not in now, deadline=10)
        orders_outbox.add()
        eventually(orders_outbox.all_sent, deadline=5)
    assert len(received(broker)) == 2


def test_a_relay_loop_drains_the_outbox_and_stops_when_asked(orders_app, orders_outbox, relay, broker):
    orders_outbox.add(5)
    with running(relay(), orders_app):
        eventually(orders_outbox.all_sent)
    assert len(received(broker)) == 5


def test_a_running_relay_prunes_its_services_bookkeeping(orders_app, clean_orders, relay):
    # What is pruned, and why that keeps every guarantee: tests/common/test_retention.py.
    old = {"event_id": str(uuid.uuid4()), "processed_at": datetime.now(UTC) - timedelta(days=8)}
    with orders_app.app_context():
        db.session.execute(insert(ProcessedEvent), [old])
        db.session.commit()

    def pruned():
        with orders_app.app_context():
            return db.session.get(ProcessedEvent, old["event_id"]) is None

    with running(relay(retentions=orders_relay.retentions(orders_app.config["SETTINGS"])), orders_app):
        eventually(pruned)
