"""products-worker against real RabbitMQ (a test vhost) and PostgreSQL."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import create_engine, func, select, text

from common.events import contracts, queues
from common.messaging import idempotency, topology
from common.messaging.process import readiness
from products import worker as products_worker
from products.models import OutboxMessage, ProcessedEvent, db
from tests.support import ROOT, eventually, queue_depth, running

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(products_app, broker, tmp_path):
    with running(products_worker.consumer(products_app, str(tmp_path / "alive")), products_app) as loop:
        yield loop


@pytest.fixture
def outcomes(products_app, clean_products):
    """The outcome events products-worker queued in its outbox, oldest first."""

    def _outcomes():
        with products_app.app_context():
            return [row.payload for row in db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id))]

    return _outcomes


def order_created(order_id=1, **lines):
    return contracts.ORDER_CREATED.new(
        order_id=order_id, user_id=1, items=[{"product_id": int(pid), "quantity": qty} for pid, qty in lines.items()]
    )


def test_order_created_takes_stock_and_reports_it(worker, publish, make_product, stock_of, outcomes):
    keyboard, mouse = make_product(quantity=50), make_product(quantity=5)
    publish(order_created(order_id=7, **{str(keyboard): 3, str(mouse): 5}))
    [outcome] = eventually(outcomes)
    assert (outcome["type"], outcome["order_id"]) == ("inventory.reserved", 7)
    assert (stock_of(keyboard), stock_of(mouse)) == (47, 0)


def test_orders_racing_for_the_last_units_in_one_batch(worker, publish, make_product, stock_of, outcomes):
    product = make_product(quantity=2)
    publish(*(order_created(order_id=number, **{str(product): 1}) for number in range(1, 6)))
    eventually(lambda: len(outcomes()) == 5)
    kinds = [outcome["type"] for outcome in outcomes()]
    assert kinds.count("inventory.reserved") == 2 and kinds.count("inventory.rejected") == 3
    assert stock_of(product) == 0


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
        assert db.session.get(ProcessedEvent, str(event.event_id)) is not None


def order_cancelled(order_id=1, **lines):
    return contracts.ORDER_CANCELLED.new(
        order_id=order_id, user_id=1, items=[{"product_id": int(pid), "quantity": qty} for pid, qty in lines.items()]
    )


def test_a_cancellation_gives_the_stock_back(worker, publish, make_product, stock_of, outcomes):
    product = make_product(quantity=10)
    publish(order_created(order_id=3, **{str(product): 4}))
    eventually(lambda: stock_of(product) == 6)
    publish(order_cancelled(order_id=3, **{str(product): 4}))
    eventually(lambda: stock_of(product) == 10)
    assert [outcome["type"] for outcome in outcomes()] == ["inventory.reserved"]


def test_a_duplicate_cancellation_gives_back_once(worker, publish, make_product, stock_of, outcomes):
    product = make_product(quantity=10)
    publish(order_created(order_id=3, **{str(product): 4}))
    eventually(lambda: stock_of(product) == 6)
    cancelled = order_cancelled(order_id=3, **{str(product): 4})
    publish(cancelled, cancelled)
    # In order: once a later event is done, both copies were seen.
    marker = make_product(quantity=1)
    publish(order_created(order_id=4, **{str(marker): 1}))
    eventually(lambda: stock_of(marker) == 0)
    assert stock_of(product) == 10


def test_a_cancellation_delivered_before_its_order_means_no_stock_is_taken(
    worker, publish, make_product, stock_of, outcomes
):
    # Both in one batch, the cancellation first: another relay, or a retry, can deliver them so.
    product = make_product(quantity=10)
    publish(order_cancelled(order_id=5, **{str(product): 4}), order_created(order_id=5, **{str(product): 4}))
    marker = make_product(quantity=1)
    publish(order_created(order_id=6, **{str(marker): 1}))
    eventually(lambda: stock_of(marker) == 0)
    assert stock_of(product) == 10
    assert [outcome["order_id"] for outcome in outcomes()] == [6]


def test_an_invalid_event_is_dead_lettered_and_the_next_one_handled(worker, publish, broker, make_product, stock_of):
    product = make_product(quantity=10)
    publish({"event_id": "not-a-uuid", "type": contracts.ORDER_CREATED.routing_key, "version": 1})
    publish(order_created(**{str(product): 1}))
    eventually(lambda: stock_of(product) == 9)
    eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1)


def test_an_event_older_than_the_duplicate_window_is_dead_lettered_not_applied(
    worker, publish, broker, make_product, stock_of
):
    # Its id may have been pruned from processed_events (common/retention.py), so
    # it can't be told apart from a duplicate: applying it could take stock twice.
    product = make_product(quantity=10)
    window = idempotency.DUPLICATE_WINDOW
    stale = msgspec.structs.replace(
        order_created(order_id=1, **{str(product): 1}), occurred_at=datetime.now(UTC) - window - timedelta(hours=1)
    )
    recent = msgspec.structs.replace(
        order_created(order_id=2, **{str(product): 2}), occurred_at=datetime.now(UTC) - window + timedelta(hours=1)
    )
    publish(stale, recent)
    eventually(lambda: stock_of(product) == 8)
    eventually(lambda: queue_depth(broker, topology.DEAD_LETTER_QUEUE) == 1)


def test_the_worker_touches_its_heartbeat(worker):
    eventually(lambda: readiness(worker.heartbeat_path, 2) is None)


# -- a crash between the commit and the ack ---------------------------------------------


@pytest.fixture
def slow_commits(products_app):
    """Every commit that claims an event takes 3 s more (a deferred trigger sleeps in
    COMMIT): long enough to kill the worker while its commit is under way."""
    url = products_app.config["SQLALCHEMY_DATABASE_URI"]
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON processed_events "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        )
    try:
        yield engine
    finally:
        with engine.connect() as connection:
            connection.execute(text("DROP TRIGGER IF EXISTS slow_commit ON processed_events"))
            connection.execute(text("DROP FUNCTION IF EXISTS slow_commit()"))
        engine.dispose()


def worker_process(products_app, amqp_url, tmp_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "SERVICE": "products",
        "DATABASE_URL": products_app.config["SQLALCHEMY_DATABASE_URI"],
        "AMQP_URL": amqp_url,
        "HEARTBEAT_FILE": str(tmp_path / "alive"),
        "METRICS_PORT": "",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "products.worker"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_worker_killed_between_its_commit_and_its_ack_loses_and_doubles_nothing(
    products_app, amqp_url, broker, publish, make_product, stock_of, outcomes, slow_commits, tmp_path
):
    product = make_product(quantity=10)
    event = order_created(order_id=41, **{str(product): 3})
    process = worker_process(products_app, amqp_url, tmp_path)
    try:
        publish(event)

        def committing():
            """the worker's transaction is in its COMMIT"""
            with slow_commits.connect() as connection:
                return connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event = 'PgSleep'"
                    )
                )

        eventually(committing, deadline=30)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    # PostgreSQL finishes the commit without its client; the broker, having lost
    # the consumer, puts the unacked message back.
    def claimed():
        """the event's claim is committed"""
        with products_app.app_context():
            return db.session.get(ProcessedEvent, str(event.event_id)) is not None

    eventually(claimed, deadline=15)
    assert stock_of(product) == 7
    eventually(lambda: queue_depth(broker, queues.PRODUCTS_ORDER_CREATED) == 1)

    # The next worker finds the claim: it acks and changes nothing.
    with running(products_worker.consumer(products_app), products_app):
        eventually(lambda: queue_depth(broker, queues.PRODUCTS_ORDER_CREATED) == 0)
    assert stock_of(product) == 7
    assert [outcome["order_id"] for outcome in outcomes()] == [41]
    with products_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ProcessedEvent)) == 1
