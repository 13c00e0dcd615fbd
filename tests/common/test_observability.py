"""Request ids, JSON logs, health and metrics, on the real apps and broker."""

import json
import logging

import pytest

from common import context
from common.events import contracts, queues
from common.logs import JsonFormatter
from common.messaging import outbox
from common.messaging.consumer import EventConsumer
from common.messaging.outbox import OutboxCollector
from common.messaging.process import readiness
from orders.models import OutboxMessage
from orders.models import db as orders_db
from products import inventory
from products import worker as products_worker
from products.models import OutboxMessage as ProductsOutbox
from products.models import ProcessedEvent
from products.models import db as products_db
from tests.support import config_for, eventually, running

pytestmark = pytest.mark.integration


def sample(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0


def test_a_request_id_is_kept_or_made_and_echoed(products_app, clean_products):
    client = products_app.test_client()
    assert client.get("/products", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/products", headers={"X-Request-ID": "not valid!"}).headers["X-Request-ID"]
    assert made != "not valid!" and len(made) == 36


def test_log_lines_are_json_with_the_request_and_user(caplog):
    caplog.set_level(logging.INFO)
    formatter = JsonFormatter("orders")
    with context.bound("rid-1"):
        context.set_ids("rid-1", "42")
        logging.getLogger("test").info("placed %s", "order", extra={"order_id": 7})
        line = json.loads(formatter.format(caplog.records[-1]))
    assert line["service"] == "orders" and line["message"] == "placed order"
    assert (line["request_id"], line["user_id"], line["order_id"]) == ("rid-1", "42", 7)


def test_each_request_is_counted_by_route_and_status(products_app, clean_products):
    labels = {"service": "products", "method": "GET", "route": "/products/<id:product_id>", "status": "404"}
    before = sample("shop_http_requests_total", **labels)
    products_app.test_client().get("/products/999")
    assert sample("shop_http_requests_total", **labels) == before + 1
    page = products_app.test_client().get("/metrics")
    assert page.status_code == 200
    assert b"shop_http_request_duration_seconds_bucket" in page.data


def test_ready_when_the_database_answers_with_the_codes_schema(products_app):
    assert products_app.test_client().get("/readyz").get_json() == {
        "status": "ready",
        "checked": ["database", "schema"],
    }


def test_not_ready_names_the_database(amqp_url, closed_port):
    from products import create_app

    app = create_app(config_for("products", f"postgresql+psycopg2://x@127.0.0.1:{closed_port}/x", amqp_url))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["database"]
    assert app.test_client().get("/healthz").status_code == 200  # alive all the same


def test_not_ready_until_the_migrations_ran(amqp_url, pg_url):
    # New code must not serve an old schema: a database its migrations haven't
    # reached yet (here: none at all) makes /readyz 503.
    from products import create_app
    from tests.support import fresh_database, test_database

    unmigrated = fresh_database(pg_url, test_database("products") + "_unmigrated")
    app = create_app(config_for("products", unmigrated, amqp_url))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["schema"]


def test_the_outbox_backlog_and_age_are_measured(orders_app, clean_orders):
    events = [
        contracts.ORDER_CREATED.new(order_id=1, user_id=1, items=[{"product_id": 1, "quantity": 1}]) for _ in range(2)
    ]
    with orders_app.app_context():
        outbox.add(orders_db.session, OutboxMessage, [outbox.message(event) for event in events])
        orders_db.session.commit()
        families = {
            family.name: family for family in OutboxCollector(orders_db.engine, OutboxMessage, "orders").collect()
        }
    assert families["shop_outbox_backlog"].samples[0].value == 2
    assert families["shop_outbox_oldest_unsent_age_seconds"].samples[0].value >= 0


def test_a_worker_without_its_broker_says_so(closed_port, tmp_path, products_app):
    worker = EventConsumer(
        f"amqp://guest:guest@127.0.0.1:{closed_port}//",
        products_db,
        queues.PRODUCTS_ORDER_CREATED,
        {contracts.ORDER_CREATED: inventory.reserve_stock, contracts.ORDER_CANCELLED: inventory.release_stock},
        processed=ProcessedEvent,
        outbox_model=ProductsOutbox,
        heartbeat_path=str(tmp_path / "alive"),
    )
    with running(worker, products_app):
        eventually(lambda: readiness(worker.heartbeat_path) == "broker unreachable")


def test_consumed_events_are_counted(broker, publish, products_app, make_product):
    labels = {"queue": "products.order-created", "outcome": "handled"}
    before = sample("shop_events_consumed_total", **labels)
    product = make_product(quantity=5)
    with running(products_worker.consumer(products_app), products_app):
        publish(contracts.ORDER_CREATED.new(order_id=1, user_id=1, items=[{"product_id": product, "quantity": 1}]))
        eventually(lambda: sample("shop_events_consumed_total", **labels) == before + 1)


def test_queue_metrics_show_every_queues_depth_and_consumers(broker, amqp_url, publish, products_app):
    """What QueueWithoutConsumer reads: with products-worker's queue unconsumed
    and one consumer on orders', one worker's collector says both."""
    from common.messaging.consumer import QueueDepthCollector

    publish(contracts.ORDER_CREATED.new(order_id=1, user_id=1, items=[{"product_id": 1, "quantity": 1}]))
    collector = QueueDepthCollector(amqp_url, queues.DECLARED)

    def families():
        return {family.name: {s.labels["queue"]: s.value for s in family.samples} for family in collector.collect()}

    with broker.Consumer(queues.ORDERS_INVENTORY_RESULTS, callbacks=[]):
        found = families()
    assert found["shop_queue_messages"]["products.order-created"] == 1
    assert found["shop_queue_consumers"] == {
        "shop.dead-letters": 0,
        "products.order-created": 0,
        "orders.inventory-results": 1,
        "products.order-created.retry": 0,
        "orders.inventory-results.retry": 0,
    }
