"""Prometheus metrics: what every process counts, and how each exposes them.

Web services serve /metrics on their own (internal) address: the gateway has no
route to it. Gunicorn runs several worker processes, so their counts are kept in
PROMETHEUS_MULTIPROC_DIR (set by common.http.gunicorn_conf) and summed on scrape.
Workers and relays are single processes and serve their metrics on METRICS_PORT.
"""

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("shop_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "shop_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
READS_SHED = Counter(
    "shop_http_reads_shed_total",
    "GETs answered 503 at once because they waited too long (common/http/shedding.py)",
    ["service"],
)
EVENTS_PUBLISHED = Counter("shop_events_published_total", "Events the broker confirmed", ["service", "type"])
PUBLISH_FAILURES = Counter(
    "shop_events_publish_failures_total", "Publishes that failed and will be retried", ["service"]
)
EVENTS_CONSUMED = Counter(
    "shop_events_consumed_total",
    "Messages a worker finished with, by outcome: handled, dead_lettered, requeued",
    ["queue", "outcome"],
)
EVENTS_RETRIED = Counter(
    "shop_events_retried_in_place_total", "Handling retried in place while a dependency was down", ["queue"]
)
CONSUMER_BATCH = Histogram(
    "shop_consumer_batch_events",
    "Events a worker handled in one transaction",
    ["queue"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)

# Observed by orders-worker for each order it settles, once its transaction commits.
SETTLEMENT_LAG = Histogram(
    "shop_order_settlement_lag_seconds",
    "From an order's creation to its settlement (settled_at - created_at)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


def exposition() -> tuple[bytes, str]:
    """The metrics page of this process (all Gunicorn workers together, if any)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve(settings, collectors=()) -> None:
    """For single-process loops: serve /metrics on the settings' metrics port, if one is set."""
    for collector in collectors:
        REGISTRY.register(collector)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_addr)
        log.info("metrics on http://%s:%s/metrics", settings.metrics_addr, settings.metrics_port)
