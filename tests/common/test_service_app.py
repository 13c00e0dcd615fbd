"""Workers and relays build their service's base app (common/service_app.py):
its settings and database, and none of its HTTP API."""

import importlib

import pytest

from products import worker as products_worker


@pytest.fixture
def offline_env(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("AMQP_URL", "amqp://nobody@127.0.0.1:1//")


@pytest.mark.parametrize("service", ["products", "orders"])
def test_a_background_app_has_the_database_and_no_http_api(offline_env, service):
    app = importlib.import_module(service).background_app()

    assert "sqlalchemy" in app.extensions and app.config["SETTINGS"].service == service
    assert [rule.endpoint for rule in app.url_map.iter_rules()] == ["static"]  # Flask's own
    assert "flask-smorest" not in app.extensions


def test_a_worker_is_built_on_it(offline_env):
    consumer = products_worker.consumer(importlib.import_module("products").background_app())
    assert consumer.queue.name == "products.order-created"
