"""Fixtures for the messaging machinery: a queue and an event type of the tests'
own, and consumers whose unit of work runs in the products test database."""

import pytest
from kombu import Connection
from sqlalchemy import func, select

from common.messaging import topology
from common.messaging.consumer import EventConsumer
from common.messaging.event import Event, EventType, payload
from common.messaging.publisher import Outgoing, Publisher
from products.models import OutboxMessage, ProcessedEvent, Product, db
from tests.support import running


class Note(Event, kw_only=True, frozen=True):
    """test.note: a note; a handler that takes it stores a product named after it."""

    note: str


NOTE = EventType("test.note", 1, {1: Note})
TEST_QUEUE = topology.subscription("test.notes", NOTE)


@pytest.fixture
def test_queue(broker):
    bound = TEST_QUEUE(broker.default_channel)
    retries = topology.retry_queue(TEST_QUEUE)(broker.default_channel)
    for queue in (bound, retries):
        queue.declare()
        queue.purge()
    yield TEST_QUEUE
    for queue in (bound, retries):
        queue.purge()


@pytest.fixture
def send(amqp_url, test_queue):
    """Publish test.note events (or any body, with `raw`) to the test queue."""
    publisher = Publisher(amqp_url, topology.declared_with([TEST_QUEUE]))

    def _send(*events):
        bodies = [payload(event) if isinstance(event, Event) else event for event in events]
        publisher.publish([Outgoing(body, NOTE.routing_key) for body in bodies])

    yield _send
    publisher.close()


@pytest.fixture
def send_raw(amqp_url, test_queue):
    def _send(body: bytes, content_type="application/json"):
        with Connection(amqp_url) as connection, connection.Producer() as producer:
            producer.publish(
                body,
                exchange=topology.EVENTS,
                routing_key=NOTE.routing_key,
                content_type=content_type,
                content_encoding="binary",
            )

    return _send


def note(text: str) -> Note:
    return NOTE.new(note=text)


class StoreNote:
    """A handler as a service writes one: it changes rows and returns events, and
    never commits. This one stores a product named after the note, announces it,
    and fails as told."""

    def __init__(self, fail=lambda event: None):
        self.calls = []
        self.fail = fail

    def __call__(self, event, locked=None):
        self.calls.append(event.note)
        self.fail(event)
        db.session.add(Product(name=event.note, price=1, quantity=1, created_by=1))
        return [NOTE.new(note=f"stored {event.note}")]


@pytest.fixture
def consume(amqp_url, products_app, clean_products, test_queue):
    """Run a consumer of the test queue with this handler while the block runs."""

    def _consume(handler, **options):
        options = {"max_pause": 0.05, "batch_size": 10, "prefetch": 10, **options}
        consumer = EventConsumer(
            amqp_url, db, TEST_QUEUE, {NOTE: handler}, processed=ProcessedEvent, outbox_model=OutboxMessage, **options
        )
        return running(consumer, products_app)

    return _consume


@pytest.fixture
def stored(products_app):
    """The notes whose effect is committed (product names), and the events announced."""

    class Stored:
        def notes(self):
            with products_app.app_context():
                return sorted(db.session.scalars(select(Product.name)))

        def announced(self):
            with products_app.app_context():
                return sorted(db.session.scalars(select(OutboxMessage.payload["note"].astext)))

        def claims(self):
            with products_app.app_context():
                return db.session.scalar(select(func.count()).select_from(ProcessedEvent))

    return Stored()
