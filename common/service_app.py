"""The base every process of a service is built on: its settings, its logs, and
its database (which survives a PostgreSQL restart, and wakes the outbox relays
after each commit that added to the outbox). The web app adds its HTTP API to it
(common/http/app.py); a worker or a relay needs nothing more, so it builds only
this (`<service>.background_app()`)."""

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from common import logs
from common.database import survive_restarts
from common.messaging.outbox import wake_relays_after_commit


def base_app(name: str, config: dict, db: SQLAlchemy) -> Flask:
    app = Flask(name)
    app.config.update(config)
    logs.configure(name, app.config["LOG_LEVEL"])
    db.init_app(app)
    with app.app_context():
        survive_restarts(db.engine)
    wake_relays_after_commit(db)
    return app
