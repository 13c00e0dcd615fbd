"""Per request: take the request id, time the request, then write one JSON log
line and the metrics for it, and echo the id to the client."""

import logging
import time

from flask import Flask, current_app, g, request

from common import context, metrics

log = logging.getLogger("access")
# Polled every few seconds by healthchecks and Prometheus: logged only at DEBUG.
QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}


def _begin():
    g.started = time.perf_counter()
    user = request.headers.get("X-User-Id")
    # The gateway's word on the user, for the log only; common.http.identity decides access.
    context.set_ids(context.accept(request.headers.get(context.HEADER)), user if user and user.isdigit() else None)


def _finish(response):
    elapsed = time.perf_counter() - g.started
    # The rule, not the path: /products/<id:product_id> is one series, not one per id.
    route = request.url_rule.rule if request.url_rule else "unmatched"
    service = current_app.config["SERVICE_NAME"]
    metrics.HTTP_REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
    metrics.HTTP_LATENCY.labels(service, request.method, route).observe(elapsed)
    # The path without its query string: tokens and other secrets can travel there.
    log.log(
        logging.DEBUG if request.path in QUIET_PATHS else logging.INFO,
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 2),
        },
    )
    response.headers[context.HEADER] = context.request_id()
    return response


def _end(_exc):
    context.set_ids(None)


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_end)
