"""orders: places orders after checking the catalog, and announces them as OrderCreated."""

import os

from flask import Flask

from common.http.app import build_app
from common.service_app import base_app
from common.settings import Settings
from orders.catalog import Catalog
from orders.models import db
from orders.routes import blp


def create_app(test_config: dict | None = None) -> Flask:
    config = Settings.from_env("orders").flask_config() if test_config is None else test_config
    settings = config["SETTINGS"]
    app = build_app("orders", config, db, [blp], os.path.dirname(__file__))
    # The products service's internal address: service to service, not through the gateway.
    app.extensions["catalog"] = Catalog(settings.products_url, settings.products_timeout_ms / 1000)
    return app


def background_app() -> Flask:
    """What orders' worker and relay run in: its settings and database, no HTTP API."""
    return base_app("orders", Settings.from_env("orders").flask_config(), db)
