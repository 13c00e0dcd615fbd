"""products-worker against real RabbitMQ (a test vhost) and PostgreSQL."""
import threading
import time

import pytest
from kombu import Connection

from common import queues
from common.events import Publisher, new_event
from products.worker import make_worker

pytestmark = pytest.mark.integration

DEADLINE = 10.0


def eventually(check, deadline=DEADLINE):
    """Poll `check` until it returns a truthy value or the deadline passes."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not true within {deadline}s: {check.__doc__ or check}")


@pytest.fixture
def broker(amqp_url):
    """Empty test queues before and after each test."""
    with Connection(amqp_url) as connection:
        for queue in (queues.PRODUCTS_ORDER_CREATED, queues.DEAD_LETTER_QUEUE):
            queue(connection.default_channel).declare()
            queue(connection.default_channel).purge()
        yield connection
        for queue in (queues.PRODUCTS_ORDER_CREATED, queues.DEAD_LETTER_QUEUE):
            queue(connection.default_channel).purge()


@pytest.fixture
def worker(products_app, broker, tmp_path):
    """A real worker loop on a thread (the process runs it on its main thread)."""
    products_app.config["WORKER_PREFETCH"] = 10
    instance = make_worker(products_app)
    instance.heartbeat_path = str(tmp_path / "alive")

    def run():
        with products_app.app_context():
            instance.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield instance
    instance.stop()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the worker did not stop when asked"


@pytest.fixture
def publish(amqp_url):
    publisher = Publisher(amqp_url)
    yield lambda event: publisher.publish(event, queues.ORDER_CREATED, declare=[queues.PRODUCTS_ORDER_CREATED])
    publisher.close()


def order_created(order_id=1, **lines):
    return new_event(
        queues.ORDER_CREATED,
        order_id=order_id,
        user_id=1,
        items=[{"product_id": int(pid), "quantity": qty} for pid, qty in lines.items()],
    )


def queue_depth(connection, queue) -> int:
    return queue(connection.default_channel).queue_declare(passive=True).message_count


def test_order_created_takes_stock(worker, publish, make_product, stock_of):
    keyboard, mouse = make_product(quantity=50), make_product(quantity=5)
    publish(order_created(**{str(keyboard): 3, str(mouse): 5}))
    eventually(lambda: stock_of(keyboard) == 47)
    assert stock_of(mouse) == 0


def test_the_same_event_twice_takes_stock_once(worker, publish, make_product, stock_of):
    product = make_product(quantity=10)
    event = order_created(**{str(product): 4})
    publish(event)
    publish(event)
    marker = make_product(quantity=1)
    # Events are handled in order; once a later one is done, both copies were seen.
    publish(order_created(order_id=2, **{str(marker): 1}))
    eventually(lambda: stock_of(marker) == 0)
    assert stock_of(product) == 6


def test_not_enough_stock_takes_nothing(worker, publish, make_product, stock_of):
    plenty, scarce = make_product(quantity=10), make_product(quantity=1)
    publish(order_created(**{str(plenty): 2, str(scarce): 2}))
    marker = make_product(quantity=1)
    publish(order_created(order_id=2, **{str(marker): 1}))
    eventually(lambda: stock_of(marker) == 0)
    assert (stock_of(plenty), stock_of(scarce)) == (10, 1)


def test_an_invalid_event_is_dead_lettered_and_the_next_one_handled(worker, publish, broker, make_product, stock_of):
    product = make_product(quantity=10)
    publish({"event_id": "not-a-uuid", "type": queues.ORDER_CREATED})
    publish(order_created(**{str(product): 1}))
    eventually(lambda: stock_of(product) == 9)
    eventually(lambda: queue_depth(broker, queues.DEAD_LETTER_QUEUE) == 1)


def test_an_undecodable_message_is_dead_lettered(worker, broker, make_product, stock_of):
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
    from common.worker import heartbeat_is_fresh

    eventually(lambda: heartbeat_is_fresh(worker.heartbeat_path, 2))
