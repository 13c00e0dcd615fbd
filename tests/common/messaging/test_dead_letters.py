"""scripts/dlq's engine against a real broker: list dead letters, requeue them."""

import pytest
from kombu import Connection

from common.events import contracts
from common.messaging import dead_letters as dlq
from common.messaging import topology
from common.messaging.event import EventType, payload
from tests.common.messaging.conftest import Note, note
from tests.support import eventually, queue_depth

pytestmark = pytest.mark.integration

DLQ_TEST = EventType("test.dlq", 1, {1: Note})
SOURCE = topology.subscription("test.dlq-source", DLQ_TEST)


@pytest.fixture
def dead_letter(amqp_url, broker):
    """Dead-letter an event the way a worker does: reject it from its quorum queue."""
    SOURCE(broker.default_channel).declare()
    SOURCE(broker.default_channel).purge()

    def _dead_letter():
        event = payload(note("dead"))
        with broker.Producer() as producer:
            producer.publish(event, exchange=topology.EVENTS, routing_key="test.dlq", message_id=event["event_id"])
        message = eventually(lambda: SOURCE(broker.default_channel).get(no_ack=False))
        message.reject(requeue=False)
        eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) >= 1)
        return event

    yield _dead_letter
    SOURCE(broker.default_channel).purge()


def test_list_shows_each_message_with_its_reason_and_leaves_it_there(amqp_url, dead_letter, broker, capsys):
    event = dead_letter()
    with Connection(amqp_url) as connection:
        dlq.list_messages(connection)
    shown = capsys.readouterr().out
    assert event["event_id"] in shown
    assert "queue=test.dlq-source" in shown and "reason=rejected" in shown and "routing_key=test.dlq" in shown
    assert f"{event['type']}  order=?" in shown  # a note names no order
    assert queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1


def test_list_names_the_orders_the_dead_letters_concern(amqp_url, broker, capsys):
    SOURCE(broker.default_channel).declare()
    lines = [{"product_id": 1, "quantity": 1}]
    cancelled = payload(contracts.ORDER_CANCELLED.new(order_id=4242, user_id=1, items=lines))
    with broker.Producer() as producer:
        producer.publish(cancelled, exchange=topology.EVENTS, routing_key="test.dlq", message_id=cancelled["event_id"])
        producer.publish(b"\x80 not json", exchange=topology.EVENTS, routing_key="test.dlq", content_type="x/y")
    for _ in range(2):
        eventually(lambda: SOURCE(broker.default_channel).get(no_ack=False)).reject(requeue=False)
    eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) >= 2)

    with Connection(amqp_url) as connection:
        dlq.list_messages(connection)

    shown = capsys.readouterr().out
    assert "order.cancelled  order=4242" in shown
    assert "?  order=?" in shown  # the undecodable one
    assert shown.rstrip().endswith("orders they concern: 4242")


def test_requeue_sends_messages_back_to_their_queue(amqp_url, dead_letter, broker):
    first, second = dead_letter(), dead_letter()
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as connection:
        dlq.requeue(connection, {second["event_id"]})
    assert queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1
    back = eventually(lambda: SOURCE(broker.default_channel).get(no_ack=True))
    assert back.payload["event_id"] == second["event_id"]
    assert back.headers["x-requeued"] == 1

    with Connection(amqp_url, transport_options={"confirm_publish": True}) as connection:
        dlq.requeue(connection, set())
    assert queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 0
    assert eventually(lambda: SOURCE(broker.default_channel).get(no_ack=True)).payload["event_id"] == first["event_id"]
