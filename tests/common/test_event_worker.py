"""The shared worker loop's promises, on a real broker, with handlers written to fail."""
import pytest
from kombu import Connection
from sqlalchemy.exc import OperationalError

from common import queues
from common.events import new_event
from common.worker import EventWorker, InvalidEvent
from tests.support import eventually, queue_depth, running

pytestmark = pytest.mark.integration

TEST_QUEUE = queues.event_queue("test.worker", "test.worker")


@pytest.fixture
def test_queue(amqp_url, broker):
    bound = TEST_QUEUE(broker.default_channel)
    bound.declare()
    bound.purge()
    yield
    bound.purge()


def send(amqp_url, event):
    with Connection(amqp_url) as connection, connection.Producer() as producer:
        producer.publish(event, exchange=queues.EVENTS, routing_key="test.worker", serializer="json", declare=[TEST_QUEUE])


class Handler:
    """Records every call; fails as told."""

    def __init__(self, fail_times=0, error=RuntimeError("boom")):
        self.calls = []
        self.fail_times = fail_times
        self.error = error

    def __call__(self, event):
        self.calls.append(event["event_id"])
        if len(self.calls) <= self.fail_times:
            raise self.error


def worker(amqp_url, handler, **options):
    return EventWorker(
        amqp_url, TEST_QUEUE, handler, transient=(OperationalError,), max_pause=0.05, prefetch=1, **options
    )


def test_a_handled_event_is_acked(amqp_url, test_queue, broker):
    handler = Handler()
    with running(worker(amqp_url, handler)):
        send(amqp_url, new_event("test.worker"))
        eventually(lambda: len(handler.calls) == 1)
    assert queue_depth(broker, TEST_QUEUE) == 0


def test_a_failing_event_is_retried_a_bounded_number_of_times_then_dead_lettered(amqp_url, test_queue, broker):
    handler = Handler(fail_times=1000)
    with running(worker(amqp_url, handler)):
        send(amqp_url, new_event("test.worker"))
        eventually(lambda: queue_depth(broker, queues.DEAD_LETTER_QUEUE) == 1)
    # The first delivery plus one per allowed return, then the dead-letter queue.
    assert len(handler.calls) == queues.DELIVERY_LIMIT + 1
    dead = queues.DEAD_LETTER_QUEUE(broker.default_channel).get(no_ack=True)
    assert dead.headers["x-death"][0]["reason"] == "delivery_limit"


def test_an_invalid_event_is_dead_lettered_at_once(amqp_url, test_queue, broker):
    handler = Handler(fail_times=1, error=InvalidEvent("nonsense"))
    with running(worker(amqp_url, handler)):
        send(amqp_url, new_event("test.worker"))
        eventually(lambda: queue_depth(broker, queues.DEAD_LETTER_QUEUE) == 1)
    assert len(handler.calls) == 1
    dead = queues.DEAD_LETTER_QUEUE(broker.default_channel).get(no_ack=True)
    assert dead.headers["x-death"][0]["reason"] == "rejected"


def test_a_database_outage_is_waited_out_without_using_deliveries(amqp_url, test_queue, broker):
    handler = Handler(fail_times=3, error=OperationalError("SELECT 1", {}, Exception("connection refused")))
    with running(worker(amqp_url, handler)):
        send(amqp_url, new_event("test.worker"))
        eventually(lambda: len(handler.calls) == 4)
        eventually(lambda: queue_depth(broker, TEST_QUEUE) == 0)
    assert queue_depth(broker, queues.DEAD_LETTER_QUEUE) == 0


def test_an_outage_longer_than_the_budget_gives_the_message_back(amqp_url, test_queue, broker):
    handler = Handler(fail_times=1000, error=OperationalError("SELECT 1", {}, Exception("connection refused")))
    with running(worker(amqp_url, handler, transient_budget=0.2)):
        send(amqp_url, new_event("test.worker"))
        eventually(lambda: queue_depth(broker, queues.DEAD_LETTER_QUEUE) == 1, deadline=30)
