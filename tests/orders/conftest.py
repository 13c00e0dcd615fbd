import socket
import threading

import pytest
from werkzeug.serving import make_server

from orders import create_app
from orders.models import db
from tests.support import config_for, empty_tables, fresh_database, migrated_app


@pytest.fixture(scope="session")
def products_url(products_app):
    """The real products app on a real socket, as orders reaches it in production."""
    server = make_server("127.0.0.1", 0, products_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def orders_app(pg_url, amqp_url, products_url):
    config = config_for(
        "orders", fresh_database(pg_url, "orders_test"), amqp_url, PRODUCTS_URL=products_url, PRODUCTS_TIMEOUT_MS=2000
    )
    return migrated_app(create_app, config)


@pytest.fixture
def client(orders_app, clean_products):
    yield orders_app.test_client()
    empty_tables(orders_app, db)


@pytest.fixture
def closed_port():
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
