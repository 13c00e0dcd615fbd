# The images of the shop, from one Dockerfile (build context: the repo root):
#   docker build --build-arg SERVICE=products -t shop/products:local .   # users, products or orders
#   docker build --target kong-config -t shop/kong-config:local .        # renders kong.yml for Kong
#   docker build --target prometheus -t shop/prometheus:local .          # (and grafana): the observability profile
# A service's image also runs its background processes (products.worker, orders.relay, ...).
FROM python:3.11.14-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes, not on every
# code edit. The exact versions the tests ran with, hash-checked (scripts/lock).
# psycopg2-binary ships its own libpq, so no apt packages are needed.
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/runtime.lock \
    && rm /tmp/runtime.lock

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app

# The code runs from source (PYTHONPATH=/app), which keeps each package's
# migrations/ where Flask-Migrate looks for it. Every package is copied: they are
# small, and a cross-package import can't then fail only in a container.
COPY scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY common/ common/
COPY kong/ kong/
COPY users/ users/
COPY products/ products/
COPY orders/ orders/
# Files arrive with the build host's modes: under a umask of 077 they would be
# unreadable to uid 10001. Root owns them; everyone may read, nobody else write.
RUN chmod -R u=rwX,go=rX /app \
    && chmod 0755 /usr/local/bin/docker-entrypoint.sh

ENTRYPOINT ["docker-entrypoint.sh"]


# One-shot: renders kong.yml with ${JWT_SECRET} filled in into /kong-config, for
# Kong to read. kong.yml is part of the image, so editing it makes a new image and
# compose recreates this container, and then restarts Kong (depends_on restart).
FROM base AS kong-config
COPY kong.yml /app/kong.yml
# The rendered file is written for uid 10001 and group-readable for Kong, which
# joins group 10001 (docker-compose.yml); Docker copies this ownership to an
# empty named volume mounted here.
RUN chmod 0644 /app/kong.yml \
    && install -d -o app -g app -m 0750 /kong-config
USER 10001:10001
CMD ["sh", "-c", "python -m kong render --config /app/kong.yml --out /kong-config/kong.yml && chmod 0640 /kong-config/kong.yml"]


# Prometheus and Grafana for `docker compose --profile observability up`, with
# their configuration built in (as kong.yml is built into kong-config: no host
# file is mounted). Pinned like every other image.
FROM prom/prometheus:v2.53.4 AS prometheus
COPY observability/prometheus/prometheus.yml observability/prometheus/alerts.yml /etc/prometheus/
USER 0
# Readable by the image's nobody (65534) whatever modes the files had on the build host.
RUN chmod 0644 /etc/prometheus/prometheus.yml /etc/prometheus/alerts.yml
USER 65534:65534

FROM grafana/grafana:11.5.2 AS grafana
COPY observability/grafana/provisioning/ /etc/grafana/provisioning/
COPY observability/grafana/dashboards/ /var/lib/grafana/dashboards/
USER 0
RUN chmod -R u=rwX,go=rX /etc/grafana/provisioning /var/lib/grafana/dashboards
USER 472


# A service: users, products or orders. Last, so a plain `docker build` ends here.
FROM base AS service
ARG SERVICE
# An image without a service would start nothing useful: refuse to build it.
RUN case "${SERVICE:-}" in users|products|orders) ;; *) echo "build with --build-arg SERVICE=users|products|orders" >&2; exit 1 ;; esac
ENV SERVICE=${SERVICE} \
    BIND=0.0.0.0:8000
USER 10001:10001
EXPOSE 8000
# common.http.gunicorn_conf serves $SERVICE's app.
CMD ["gunicorn", "-c", "python:common.http.gunicorn_conf"]
