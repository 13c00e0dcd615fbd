"""products: the catalog and the stock. Its worker (products.worker) takes stock for new orders."""

import os

from flask import Flask

from common.http.app import build_app
from common.settings import Settings
from products.internal import internal
from products.models import db
from products.routes import blp


def create_app(test_config: dict | None = None) -> Flask:
    config = Settings.from_env("products").flask_config() if test_config is None else test_config
    return build_app("products", config, db, [blp], os.path.dirname(__file__), internal=[internal])
