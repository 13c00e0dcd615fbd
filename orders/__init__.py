"""orders: places orders after checking the catalog, and announces them as OrderCreated."""
import os

from flask import Flask

from common.app import build_app
from common.config import env, env_int, service_config
from orders.catalog import Catalog
from orders.models import db
from orders.routes import blp


def load_config() -> dict:
    return {
        **service_config("orders"),
        # The products service's internal address: service to service, not through the gateway.
        "PRODUCTS_URL": env("PRODUCTS_URL", "http://127.0.0.1:8102"),
        "PRODUCTS_TIMEOUT_MS": env_int("PRODUCTS_TIMEOUT_MS", 2000),
    }


def create_app(test_config: dict | None = None) -> Flask:
    config = load_config() if test_config is None else test_config
    app = build_app("orders", config, db, [blp], os.path.dirname(__file__))
    app.extensions["catalog"] = Catalog(config["PRODUCTS_URL"], config["PRODUCTS_TIMEOUT_MS"] / 1000)
    return app
