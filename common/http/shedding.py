"""Load shedding: a read that has waited too long for the service is refused at
once, with 503 and Retry-After, instead of being served late.

Under overload, requests queue in front of a service's threads (Gunicorn's
accept queue, each worker's own queue). A read served after seconds in that
line helps no one, as its client has likely given up, yet it costs as much CPU
as a fresh one; and the orders' catalog lookups wait in the same line behind
it, so without shedding the public reads starve the orders
(docs/benchmarks.md, the overload run). So the gateway stamps every request
with the moment it arrived (X-Request-Start, in milliseconds since the epoch:
kong.yml's global post-function, which replaces any value a client sent), and
a GET that waited longer than SHED_READS_AFTER_MS is answered before any work
is done: reading the request is all it costs.

Only reads are shed. An order, a cancellation or a restock that waited is still
wanted, and is served. What doesn't come through the gateway (the internal
lookup, probes, a test client) carries no stamp and is never shed; nor is a
stamp that isn't a whole number, or that lies ahead of this host's clock (two
hosts' clocks drift apart by milliseconds; the budget is a hundred).
"""

import time

from flask import Flask, current_app, request

from common import metrics
from common.http.errors import error_body

HEADER = "X-Request-Start"
BUSY = "The service is busy; try again shortly."
RETRY_AFTER = "1"


def _shed_stale_reads():
    budget_ms = current_app.config["SETTINGS"].shed_reads_after_ms
    if request.method != "GET" or not budget_ms:
        return None
    stamp = request.headers.get(HEADER, "")
    if not (stamp.isascii() and stamp.isdigit()):
        return None
    if time.time() * 1000 - int(stamp) <= budget_ms:
        return None
    metrics.READS_SHED.labels(current_app.config["SERVICE_NAME"]).inc()
    return error_body(BUSY), 503, {"Retry-After": RETRY_AFTER}


def init_app(app: Flask) -> None:
    app.before_request(_shed_stale_reads)
