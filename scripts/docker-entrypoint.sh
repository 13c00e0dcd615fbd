#!/bin/sh
# Entrypoint of the users, products and orders images.
#
# With MIGRATE=1 it brings the service's database up to date before the command
# starts, so exactly one process per database (the web container) migrates and the
# schema is current before gunicorn accepts traffic. Then it becomes the command
# (exec), so gunicorn or the worker is PID 1 and gets Docker's signals directly.
set -eu

if [ "${MIGRATE:-0}" = "1" ]; then
    : "${SERVICE:?SERVICE must name the service (users, products or orders) when MIGRATE=1}"
    # Compose starts us only once PostgreSQL is healthy; the retries cover a
    # connection that still fails right after that, instead of a restart loop.
    attempts=${MIGRATE_ATTEMPTS:-5}
    n=1
    until python -m common.migrate "$SERVICE"; do
        if [ "$n" -ge "$attempts" ]; then
            echo "docker-entrypoint: migrating $SERVICE failed $n times, giving up" >&2
            exit 1
        fi
        echo "docker-entrypoint: migrating $SERVICE failed (attempt $n of $attempts), retrying in 2s" >&2
        n=$((n + 1))
        sleep 2
    done
fi

exec "$@"
