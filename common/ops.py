"""Routes for operators, not clients: liveness, readiness and metrics.

The gateway routes none of them, so they answer only on the service's internal
address (healthchecks, Prometheus)."""
import logging

from flask import Blueprint, current_app
from sqlalchemy import select

from common import metrics
from common.db import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz():
    """Alive: the process answers. Says nothing about its dependencies."""
    return {"status": "ok"}


@ops.get("/readyz")
def readyz():
    """Ready: its database answers within a short timeout. A failure names it."""
    db = current_app.extensions["sqlalchemy"]
    try:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("SET statement_timeout = 2000")
            connection.execute(select(1))
    except DATABASE_UNAVAILABLE as exc:
        log.warning("not ready: database unreachable (%s)", exc.orig or exc)
        return {"message": "Not ready: the database is unreachable.", "failing": ["database"]}, 503
    return {"status": "ready", "checked": ["database"]}


@ops.get("/metrics")
def metrics_page():
    body, content_type = metrics.exposition()
    return body, 200, {"Content-Type": content_type}
