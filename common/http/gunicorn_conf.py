"""Gunicorn settings for every web service (`gunicorn -c python:common.http.gunicorn_conf`)."""

import os
import tempfile

from gunicorn import glogging

from common.settings import Settings

# SERVICE names the app (users, products or orders): one image, one config, any service.
_settings = Settings.from_env(os.environ["SERVICE"])
wsgi_app = f"{_settings.service}:create_app()"
# The internal listener, where there is one, serves what only other services may call.
bind = [_settings.bind, *([_settings.internal_bind] if _settings.internal_bind else [])]
# Processes and threads per service; WEB_CONCURRENCY and WEB_THREADS override them.
# Chosen with scripts/bench (the figures: docs/benchmarks.md): products serves catalog
# reads, all CPU, and only processes use more than one core (the GIL), so more
# processes of fewer threads; orders mostly waits (on products, on its commit), so
# fewer processes of more threads; users waits on Argon2, which runs outside the GIL.
_PER_SERVICE = {"products": (4, 2), "orders": (2, 4), "users": (2, 4)}
_workers, _threads = _PER_SERVICE[_settings.service]
workers = _settings.web_processes or _workers
# gthread, with Gunicorn's own error pages (requests it can't parse) in JSON.
worker_class = "common.http.gunicorn_worker.JsonErrorsThreadWorker"
threads = _settings.web_threads or _threads
# The gateway keeps connections open to us; don't cut them sooner than it expects.
keepalive = 30
graceful_timeout = 20
timeout = 30
# Recent Gunicorn opens a control socket at one fixed per-user path; three services on
# one host would fight over it (and in a container with HOME=/nonexistent it fails).
control_socket_disable = True
# The gateway bounds request lines and headers (8 KiB a line, 32 KiB in all, as
# Kong's nginx does) and answers oversized ones itself, in JSON; Gunicorn's limits
# sit above that, so that nothing the gateway lets through is refused here. (0 is
# "no limit" for the request line, but for a header line it means Gunicorn's
# default, 8,190 bytes: just under the gateway's 8 KiB.)
limit_request_line = 0
limit_request_field_size = 16384
limit_request_fields = 32768
# Only X-Forwarded-Proto tells the scheme: the gateway sets it on every request.
# Gunicorn's default also reads X-Forwarded-Ssl and X-Forwarded-Protocol, which
# Kong passes on from clients as they are; one saying https beside the gateway's
# "http" would make every such request a 400 ("Contradictory scheme headers").
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
# A header whose name has an underscore (X_User_Id) is dropped, never mapped to
# X-User-Id: Kong drops them too (kong/kong.env), but a service must not depend on
# that for the one header it trusts. (Gunicorn's default since 22.0, pinned here.)
header_map = "drop"

# No access log from Gunicorn: each service writes its own JSON line per request
# (common/access.py), with the request id and without the query string.
accesslog = None
errorlog = "-"
# Gunicorn's own messages as JSON lines too, like everything else on stdout.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "common.logs.JsonFormatter", "service": _settings.service}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    # Gunicorn merges this over its defaults key by key, so root must be named here;
    # it gets its handler from the app (common.logs.configure), not twice.
    "root": {"handlers": [], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        # Our own access lines replace these (a logconfig would otherwise switch them on).
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}


class _ServiceLogger(glogging.Logger):
    """Gunicorn's logger with its access log really off. A logconfig_dict alone makes
    Gunicorn build every access line (a dict of ~20 atoms) and hand it to a logger
    that drops it: wasted work on every request, since common/access.py logs them."""

    def _compute_access_log_enabled(self):
        return False


logger_class = _ServiceLogger

# Prometheus counts from every worker process, summed on scrape (common/metrics.py).
# A fresh private directory per start, so no counts from an earlier run linger.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="shop-metrics-"))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
