"""products: the catalog and the stock. Its worker (products.worker) takes stock for new orders."""

import os

from flask import Flask

from common.http.app import build_app
from common.service_app import base_app
from common.settings import Settings
from products.internal import internal
from products.models import db
from products.routes import blp


def create_app(test_config: dict | None = None) -> Flask:
    config = Settings.from_env("products").flask_config() if test_config is None else test_config
    return build_app("products", config, db, [blp], os.path.dirname(__file__), internal=[internal])


def background_app() -> Flask:
    """What products' worker and relay run in: its settings and database, no HTTP API."""
    return base_app("products", Settings.from_env("products").flask_config(), db)
