"""products-worker against real RabbitMQ (a test vhost) and PostgreSQL."""
import pytest

from common import queues
from common.events import new_event
from products.models import OutboxMessage, ProcessedEvent, db
from common.worker import worker_for
from products.worker import handle_order_created
from tests.support import eventually, queue_depth, running

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(products_app, broker, tmp_path):
    products_app.config["WORKER_PREFETCH"] = 10
    loop = worker_for(products_app, queues.PRODUCTS_ORDER_CREATED, handle_order_created, str(tmp_path / "alive"))
    with running(loop, products_app):
        yield loop


@pytest.fixture
def outcomes(products_app, clean_products):
    """The outcome events products-worker queued in its outbox, oldest first."""

    def _outcomes():
        with products_app.app_context():
            return [row.payload for row in db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id))]

    return _outcomes


def order_created(order_id=1, **lines):
    return new_event(
        queues.ORDER_CREATED,
        order_id=order_id,
        user_id=1,
        items=[{"product_id": int(pid), "quantity": qty} for pid, qty in lines.items()],
    )


def test_order_created_takes_stock_and_reports_it(worker, publish, make_product, stock_of, outcomes):
    keyboard, mouse = make_product(quantity=50), make_product(quantity=5)
    publish(order_created(order_id=7, **{str(keyboard): 3, str(mouse): 5}))
    [outcome] = eventually(outcomes)
    assert (outcome["type"], outcome["order_id"]) == ("inventory.reserved", 7)
    assert (stock_of(keyboard), stock_of(mouse)) == (47, 0)


def test_not_enough_stock_takes_nothing_and_says_why(worker, publish, make_product, stock_of, outcomes):
    plenty, scarce = make_product(quantity=10), make_product(quantity=1)
    publish(order_created(order_id=8, **{str(plenty): 2, str(scarce): 2, "999999": 1}))
    [outcome] = eventually(outcomes)
    assert outcome["type"] == "inventory.rejected"
    assert outcome["shortages"] == [
        {"product_id": scarce, "requested": 2, "available": 1},
        {"product_id": 999999, "requested": 1, "available": 0},
    ]
    assert f"product {scarce}: 1 left, 2 requested" in outcome["reason"]
    assert (stock_of(plenty), stock_of(scarce)) == (10, 1)


def test_the_same_event_twice_takes_stock_once(worker, publish, make_product, stock_of, outcomes, products_app):
    product = make_product(quantity=10)
    event = order_created(**{str(product): 4})
    publish(event)
    publish(event)
    # Events are handled in order: once a later one is done, both copies were seen.
    marker = make_product(quantity=1)
    publish(order_created(order_id=2, **{str(marker): 1}))
    eventually(lambda: len(outcomes()) == 2)
    assert stock_of(product) == 6
    with products_app.app_context():
        assert db.session.get(ProcessedEvent, event["event_id"]) is not None


def test_an_invalid_event_is_dead_lettered_and_the_next_one_handled(worker, publish, broker, make_product, stock_of):
    product = make_product(quantity=10)
    publish({"event_id": "not-a-uuid", "type": queues.ORDER_CREATED})
    publish(order_created(**{str(product): 1}))
    eventually(lambda: stock_of(product) == 9)
    eventually(lambda: queue_depth(broker, queues.DEAD_LETTER_QUEUE) == 1)


def test_an_undecodable_message_is_dead_lettered(worker, broker):
    with broker.Producer() as producer:
        producer.publish(
            b"\x80not json",
            exchange=queues.EVENTS,
            routing_key=queues.ORDER_CREATED,
            content_type="application/x-python-serialize",
            content_encoding="binary",
        )
    eventually(lambda: queue_depth(broker, queues.DEAD_LETTER_QUEUE) == 1)
    assert queue_depth(broker, queues.PRODUCTS_ORDER_CREATED) == 0


def test_the_worker_touches_its_heartbeat(worker):
    from common.daemon import readiness

    eventually(lambda: readiness(worker.heartbeat_path, 2) is None)
