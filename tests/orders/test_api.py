from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine
from sqlalchemy import event as orm_events
from sqlalchemy.pool import NullPool

from common.messaging import outbox
from orders import create_app as create_orders_app
from orders.catalog import Catalog
from orders.models import Order, OutboxMessage, db
from tests.support import config_for, eventually

pytestmark = pytest.mark.integration

ANN = {"X-User-Id": "1"}
BOB = {"X-User-Id": "2"}


@pytest.fixture
def order_events(orders_app):
    """The events waiting in the orders outbox, oldest first."""

    def _events():
        with orders_app.app_context():
            return [row.payload for row in db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id))]

    return _events


@contextmanager
def before_each_commit(orders_app, listener):
    """Run listener(session) before every commit of the orders session meanwhile."""
    with orders_app.app_context():
        orm_events.listen(db.session, "before_commit", listener)
    try:
        yield
    finally:
        with orders_app.app_context():
            orm_events.remove(db.session, "before_commit", listener)


def order_count(orders_app) -> int:
    with orders_app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Order))


def test_place_an_order(client, make_product, order_events):
    product = make_product(price="249.99", quantity=50)
    response = client.post("/orders", json={"items": [{"product_id": product, "quantity": 3}]}, headers=ANN)
    assert response.status_code == 201
    order = response.get_json()
    assert order["status"] == "PENDING"
    assert order["total"] == 749.97
    assert order["items"] == [{"product_id": product, "quantity": 3, "unit_price": 249.99}]

    [event] = order_events()
    assert event["type"] == "order.created"
    assert (event["order_id"], event["user_id"]) == (order["id"], 1)
    assert event["items"] == [{"product_id": product, "quantity": 3}]
    assert {"event_id", "occurred_at"} <= set(event)


def test_the_total_is_exact(client, make_product):
    cheap, pricey = make_product(price="0.10", quantity=100), make_product(price="0.20", quantity=100)
    response = client.post(
        "/orders",
        json={"items": [{"product_id": cheap, "quantity": 1}, {"product_id": pricey, "quantity": 1}]},
        headers=ANN,
    )
    # 0.1 + 0.2 in binary floating point would be 0.30000000000000004.
    assert b'"total":0.3' in response.data and b"0.30000" not in response.data


def test_unknown_product_is_422_and_nothing_stored(client, make_product, orders_app, order_events):
    real = make_product()
    response = client.post(
        "/orders",
        json={"items": [{"product_id": real, "quantity": 1}, {"product_id": 999999, "quantity": 1}]},
        headers=ANN,
    )
    assert response.status_code == 422
    assert response.get_json() == {"message": "Product 999999 does not exist."}
    assert order_count(orders_app) == 0
    assert order_events() == []


@pytest.mark.parametrize("idempotency_key", [None, "total-too-large"])
def test_a_total_too_large_to_store_is_422_and_nothing_stored(
    client, make_product, orders_app, order_events, idempotency_key
):
    # 101 units at the largest price add up to more than NUMERIC(14, 2) holds: this
    # was PostgreSQL's "numeric field overflow", a 500.
    product = make_product(price="9999999999.99", quantity=1000)
    headers = {**ANN, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}

    response = client.post("/orders", json={"items": [{"product_id": product, "quantity": 101}]}, headers=headers)

    assert response.status_code == 422, response.get_json()
    assert "more than the shop takes in one order" in response.get_json()["message"]
    assert order_count(orders_app) == 0
    assert order_events() == []


def test_the_largest_total_that_fits_is_taken(client, make_product):
    product = make_product(price="9999999999.99", quantity=1000)

    response = client.post("/orders", json={"items": [{"product_id": product, "quantity": 100}]}, headers=ANN)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["total"] == 999999999999.0


def test_a_process_whose_pool_has_one_connection_places_orders(
    orders_app, clean_orders, make_product, products_url, amqp_url
):
    # Issue 16, finding 9: the NOTIFY that wakes the relays after a commit took a
    # second connection while the committing one was still held, so a thread
    # needed two at once; with one pooled connection the order committed, then
    # answered 500 after pool_timeout, and a retry without a key ordered twice.
    url = orders_app.config["SQLALCHEMY_DATABASE_URI"]
    config = config_for("orders", url, amqp_url, products_url=products_url, db_pool_size=1, db_pool_overflow=0)
    lean = create_orders_app(config)
    product = make_product()
    with listening(url, outbox.CHANNEL) as notifications:
        response = lean.test_client().post(
            "/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=ANN
        )
        assert response.status_code == 201, response.get_json()
        eventually(notifications.poll, deadline=5)
    assert order_count(orders_app) == 1
    with lean.app_context():
        db.engine.dispose()


@contextmanager
def listening(url, channel):
    """A connection of our own that LISTENs on `channel`; .poll() says whether a NOTIFY came."""
    engine = create_engine(url, poolclass=NullPool)
    raw = engine.raw_connection()
    try:
        raw.driver_connection.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute(f"LISTEN {channel}")

        class Notifications:
            def poll(self):
                """the relays' channel was notified"""
                raw.driver_connection.poll()
                return bool(raw.driver_connection.notifies)

        yield Notifications()
    finally:
        raw.close()
        engine.dispose()


def test_not_enough_stock_is_409(client, make_product, orders_app):
    product = make_product(quantity=2)
    response = client.post("/orders", json={"items": [{"product_id": product, "quantity": 3}]}, headers=ANN)
    assert response.status_code == 409
    assert response.get_json()["message"] == f"Not enough stock for product {product}: 2 left, 3 requested."
    assert order_count(orders_app) == 0


def test_products_service_down_is_503(client, orders_app, closed_port):
    catalog = orders_app.extensions["catalog"]
    orders_app.extensions["catalog"] = Catalog(f"http://127.0.0.1:{closed_port}", timeout=1)
    try:
        response = client.post("/orders", json={"items": [{"product_id": 1, "quantity": 1}]}, headers=ANN)
    finally:
        orders_app.extensions["catalog"] = catalog
    assert response.status_code == 503
    assert response.get_json() == {"message": "The products service is unavailable; try again shortly."}
    assert order_count(orders_app) == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": "lots"}, "items"),
        ({"items": [{"product_id": 1}]}, "items"),
        ({"items": [{"product_id": 1, "quantity": 0}]}, "items"),
        ({"items": [{"product_id": 1, "quantity": -2}]}, "items"),
        ({"items": [{"product_id": "1", "quantity": 1}]}, "items"),
        # Numbers are JSON numbers: int() would read each of these strings.
        ({"items": [{"product_id": "1_000", "quantity": 1}]}, "items"),
        ({"items": [{"product_id": " 1 ", "quantity": 1}]}, "items"),
        ({"items": [{"product_id": "\u0661", "quantity": 1}]}, "items"),
        ({"items": [{"product_id": 1, "quantity": "2"}]}, "items"),
        ({"items": [{"product_id": 1, "quantity": 2.0}]}, "items"),
        ({"items": [{"product_id": True, "quantity": 1}]}, "items"),
        ({"items": [{"product_id": 2**64, "quantity": 1}]}, "items"),
        ({"items": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]}, "items"),
        ({"items": [{"product_id": 1, "quantity": 1}], "user_id": 2}, "user_id"),
    ],
)
def test_invalid_orders_are_422(client, body, field, orders_app):
    response = client.post("/orders", json=body, headers=ANN)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert order_count(orders_app) == 0


@pytest.mark.parametrize("query", ["page=1_000", "per_page=%20%205", "page=%D9%A1", "per_page=1e1"])
def test_page_numbers_are_plain_ascii_digits(client, query):
    response = client.get(f"/orders?{query}", headers=ANN)

    assert response.status_code == 422
    assert {"page", "per_page"} & set(response.get_json()["errors"])


def test_an_order_id_in_digits_of_another_script_is_no_route(client):
    assert client.get("/orders/\u0661", headers=ANN).status_code == 404


def test_orders_are_private(client, make_product):
    product = make_product()
    placed = client.post("/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=ANN)
    order_id = placed.get_json()["id"]

    assert client.get(f"/orders/{order_id}", headers=ANN).get_json()["id"] == order_id
    assert [o["id"] for o in client.get("/orders", headers=ANN).get_json()["items"]] == [order_id]

    # Another user's order looks exactly like one that doesn't exist.
    theirs, missing = client.get(f"/orders/{order_id}", headers=BOB), client.get("/orders/999999", headers=BOB)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json()
    assert client.get("/orders", headers=BOB).get_json()["items"] == []


def test_orders_need_an_identity(client):
    assert client.get("/orders").status_code == 401
    assert client.post("/orders", json={"items": [{"product_id": 1, "quantity": 1}]}).status_code == 401


def test_the_answer_is_the_order_as_created_even_if_settled_since(client, make_product, orders_app):
    product = make_product()

    def settle_at_once(session):
        # Every new order settled the moment it is committed, faster than any worker.
        session.connection().exec_driver_sql("UPDATE orders SET status = 'CONFIRMED'")

    with before_each_commit(orders_app, settle_at_once):
        response = client.post("/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=ANN)
    assert response.status_code == 201
    assert response.get_json()["status"] == "PENDING"
    assert response.get_json()["created_at"]


def test_errors_in_list_items_are_keyed_by_position(client):
    # marshmallow keys item errors by int index beside "_schema": all must reach JSON.
    body = {"items": [{"product_id": 1, "quantity": 1}, 0, {"product_id": 1, "quantity": 2}]}
    response = client.post("/orders", json=body, headers=ANN)
    assert response.status_code == 422
    errors = response.get_json()["errors"]["items"]
    assert "1" in errors and "_schema" in errors


def test_an_order_of_several_lines_asks_the_catalog_once(client, make_product, products_app):
    from prometheus_client import REGISTRY

    products = [make_product(quantity=5) for _ in range(3)]
    labels = {"service": "products", "method": "GET", "route": "/internal/products", "status": "200"}
    before = REGISTRY.get_sample_value("shop_http_requests_total", labels) or 0

    response = client.post(
        "/orders", json={"items": [{"product_id": product, "quantity": 1} for product in products]}, headers=ANN
    )

    assert response.status_code == 201, response.get_json()
    assert REGISTRY.get_sample_value("shop_http_requests_total", labels) == before + 1


def test_losing_the_database_mid_request_is_503_with_retry_after(client, make_product, orders_app):
    product = make_product(quantity=5)

    def connection_lost(session):
        # What PostgreSQL restarting under the request looks like to it.
        session.connection().exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    with before_each_commit(orders_app, connection_lost):
        response = client.post("/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=ANN)
    assert response.status_code == 503
    assert response.get_json() == {"message": "The database is unavailable; try again shortly."}
    assert response.headers["Retry-After"] == "2"
    assert order_count(orders_app) == 0  # nothing half-written
    # And the next request finds a working connection.
    again = client.post("/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=ANN)
    assert again.status_code == 201
