"""Fixtures shared by the service tests: a real, migrated PostgreSQL database per
service and a RabbitMQ virtual host of their own, so tests never touch the data or
queues of a running stack."""

import dataclasses
import socket
import subprocess
import threading
from decimal import Decimal

import pytest
from kombu import Connection
from werkzeug.serving import make_server

from common.events import queues
from common.messaging.event import Event, payload
from common.messaging.publisher import Outgoing, Publisher
from orders import create_app as create_orders_app
from orders.models import db as orders_db
from products import create_app as create_products_app
from products.models import Product
from products.models import db as products_db
from tests.support import NAMESPACE, config_for, empty_tables, fresh_database, migrated_app, test_database

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
TEST_VHOST = f"shop_{NAMESPACE}"


def pytest_addoption(parser):
    parser.addoption("--pg-url", default=PG_URL, help="a PostgreSQL superuser URL for the test databases")
    parser.addoption("--amqp-url", default=None, help=f"a RabbitMQ URL for a test vhost (default: create {TEST_VHOST})")


@pytest.fixture(scope="session")
def pg_url(request):
    return request.config.getoption("--pg-url")


@pytest.fixture(scope="session")
def amqp_url(request):
    given = request.config.getoption("--amqp-url")
    if given:
        return given
    # A vhost of the tests' own: the running stack's worker can't steal test messages.
    vhosts = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True)
    if TEST_VHOST not in vhosts.stdout.split():
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", TEST_VHOST], check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", TEST_VHOST, "guest", ".*", ".*", ".*"], check=True
        )
    return f"amqp://guest:guest@127.0.0.1:5672/{TEST_VHOST}"


@pytest.fixture
def broker(amqp_url):
    """A connection to the test vhost, every queue declared and empty before and after."""
    with Connection(amqp_url) as connection:
        for queue in queues.DECLARED:
            queue(connection.default_channel).declare()
            queue(connection.default_channel).purge()
        yield connection
        for queue in queues.DECLARED:
            queue(connection.default_channel).purge()


@pytest.fixture
def publish(amqp_url, broker):
    """Publish events as a relay would: persistent JSON, confirmed, routed by their
    type. An event is a contract's Struct, or (to send what no contract allows) a dict."""
    publisher = Publisher(amqp_url, queues.DECLARED)

    def _publish(*events):
        bodies = [payload(event) if isinstance(event, Event) else event for event in events]
        publisher.publish([Outgoing(body, body["type"]) for body in bodies])

    yield _publish
    publisher.close()


# -- products: used by the products tests and, as a real peer, by the orders tests --


@pytest.fixture(scope="session")
def products_app(pg_url, amqp_url):
    return migrated_app(
        create_products_app, config_for("products", fresh_database(pg_url, test_database("products")), amqp_url)
    )


@pytest.fixture
def clean_products(products_app):
    yield
    empty_tables(products_app, products_db)


@pytest.fixture
def make_product(products_app, clean_products):
    """Factory: store a product directly, returning its id."""

    def _make(**overrides):
        fields = {"name": "Keyboard", "price": Decimal("249.99"), "quantity": 50, "created_by": 1, **overrides}
        with products_app.app_context():
            product = Product(**fields)
            products_db.session.add(product)
            products_db.session.commit()
            return product.id

    return _make


@pytest.fixture
def stock_of(products_app):
    def _stock(product_id):
        with products_app.app_context():
            return products_db.session.get(Product, product_id).quantity

    return _stock


# -- orders: a real products server on a socket as its peer -------------------------


@pytest.fixture(scope="session")
def products_url(products_app):
    """The real products app on a real socket, as orders reaches it in production:
    that socket is its internal listener (the test client is its public one)."""
    server = make_server("127.0.0.1", 0, products_app, threaded=True)
    settings = products_app.config["SETTINGS"]
    products_app.config["SETTINGS"] = dataclasses.replace(settings, internal_bind=f"127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    products_app.config["SETTINGS"] = settings


@pytest.fixture(scope="session")
def orders_app(pg_url, amqp_url, products_url):
    config = config_for(
        "orders",
        fresh_database(pg_url, test_database("orders")),
        amqp_url,
        products_url=products_url,
        products_timeout_ms=2000,
    )
    return migrated_app(create_orders_app, config)


@pytest.fixture
def clean_orders(orders_app):
    yield
    empty_tables(orders_app, orders_db)


@pytest.fixture
def closed_port():
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
