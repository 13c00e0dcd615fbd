"""Request ids, JSON logs, health and metrics, on the real apps and broker."""
import json
import logging

import pytest
from flask_smorest import Blueprint

from common import context, queues
from common.app import build_app
from common.daemon import readiness
from common.db import make_db
from common.events import new_event
from common.logs import JsonFormatter
from common.outbox import OutboxCollector, enqueue
from common.worker import EventWorker
from orders.models import OutboxMessage
from orders.models import db as orders_db
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


def test_an_unexpected_error_gives_the_client_the_id_and_the_log_the_trace(amqp_url, pg_url, caplog):
    broken = Blueprint("broken", __name__)

    @broken.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    app = build_app("boom", config_for("boom", pg_url, amqp_url), make_db(), [broken], "/nonexistent")
    response = app.test_client().get("/boom", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 500
    assert "trace-42" in response.get_json()["message"] and "kaboom" not in response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.exc_info]
    assert "kaboom" in str(record.exc_info[1])
    assert json.loads(JsonFormatter("boom").format(record)).get("error", "").endswith("RuntimeError: kaboom")


def test_ready_when_the_database_answers(products_app):
    assert products_app.test_client().get("/readyz").get_json() == {"status": "ready", "checked": ["database"]}


def test_not_ready_names_the_database(amqp_url, closed_port):
    from products import create_app

    app = create_app(config_for("products", f"postgresql+psycopg2://x@127.0.0.1:{closed_port}/x", amqp_url))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["database"]
    assert app.test_client().get("/healthz").status_code == 200  # alive all the same


def test_the_outbox_backlog_and_age_are_measured(orders_app, clean_orders):
    with orders_app.app_context():
        for _ in range(2):
            enqueue(orders_db.session, OutboxMessage, new_event(queues.ORDER_CREATED, order_id=1, user_id=1, items=[]))
        orders_db.session.commit()
        families = {family.name: family for family in OutboxCollector(orders_db.engine, OutboxMessage, "orders").collect()}
    assert families["shop_outbox_backlog"].samples[0].value == 2
    assert families["shop_outbox_oldest_unsent_age_seconds"].samples[0].value >= 0


def test_a_worker_without_its_broker_says_so(closed_port, tmp_path):
    worker = EventWorker(
        f"amqp://guest:guest@127.0.0.1:{closed_port}//", queues.PRODUCTS_ORDER_CREATED, lambda event: None,
        heartbeat_path=str(tmp_path / "alive"),
    )
    with running(worker):
        eventually(lambda: readiness(worker.heartbeat_path) == "broker unreachable")


def test_consumed_events_are_counted(amqp_url, broker, publish, products_app, make_product):
    from common.worker import worker_for
    from products.worker import handle_order_created

    labels = {"queue": "products.order-created", "outcome": "handled"}
    before = sample("shop_events_consumed_total", **labels)
    product = make_product(quantity=5)
    loop = worker_for(products_app, queues.PRODUCTS_ORDER_CREATED, handle_order_created)
    with running(loop, products_app):
        publish(new_event(queues.ORDER_CREATED, order_id=1, user_id=1, items=[{"product_id": product, "quantity": 1}]))
        eventually(lambda: sample("shop_events_consumed_total", **labels) == before + 1)
