"""Gunicorn settings for every web service (`gunicorn -c python:common.gunicorn_conf`)."""
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads let a worker keep serving while one request waits on the database or a peer.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# The gateway keeps connections open to us; don't cut them sooner than it expects.
keepalive = 30
graceful_timeout = 20
timeout = 30
# Recent Gunicorn opens a control socket at one fixed per-user path; three services on
# one host would fight over it (and in a container with HOME=/nonexistent it fails).
control_socket_disable = True
accesslog = "-"
errorlog = "-"
# The default access format doesn't include request headers, so tokens never reach the log.
