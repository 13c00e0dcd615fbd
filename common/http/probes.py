"""Routes for operators, not clients: liveness, readiness and metrics.

The gateway routes none of them, so they answer only on the service's internal
address (healthchecks, Prometheus)."""

import logging

from flask import Blueprint, current_app

from common import metrics
from common.database import DATABASE_UNAVAILABLE
from common.migrate import current

log = logging.getLogger(__name__)

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz():
    """Alive: the process answers. Says nothing about its dependencies."""
    return {"status": "ok"}


@ops.get("/readyz")
def readyz():
    """Ready: the database answers within a short timeout, and its schema is the
    one this code's migrations end in (until the migrations ran, new code must not
    serve). A failure names what is wrong."""
    db = current_app.extensions["sqlalchemy"]
    try:
        with db.engine.connect() as connection:
            # LOCAL: the timeout ends with this transaction, not with the pooled connection.
            connection.exec_driver_sql("SET LOCAL statement_timeout = 2000")
            schema = current(connection)
    except DATABASE_UNAVAILABLE as exc:
        log.warning("not ready: database unreachable (%s)", exc.orig or exc)
        return {"message": "Not ready: the database is unreachable.", "failing": ["database"]}, 503
    if schema != current_app.extensions["schema_heads"]:
        log.warning("not ready: database schema at %s, code expects %s", schema, current_app.extensions["schema_heads"])
        return {
            "message": "Not ready: the database schema is not the code's (migrations not applied).",
            "failing": ["schema"],
        }, 503
    return {"status": "ready", "checked": ["database", "schema"]}


@ops.get("/metrics")
def metrics_page():
    body, content_type = metrics.exposition()
    return body, 200, {"Content-Type": content_type}
