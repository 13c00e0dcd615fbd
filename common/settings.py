"""Every setting of every process, read once from the environment, each default
in one place (12-factor).

    settings = Settings.from_env("orders")

The services turn it into their Flask config (`flask_config`), the background
processes read it as they start, and nothing else reads the environment for
the system's own settings. A setting that is missing or unusable raises
ConfigError: the process must not start.

The defaults are those of the native stack (scripts/stack): every service on
127.0.0.1 at the port LOCAL_PORTS names, its own database named after it on the
local PostgreSQL, the local RabbitMQ. docker-compose.yml and the Kubernetes
manifests set what differs.
"""

import os
from dataclasses import dataclass, field, fields

from common.database import JSON_OPTIONS

# Where the native stack runs each service (public API; products also serves its
# internal API for orders on PRODUCTS_INTERNAL_PORT).
LOCAL_PORTS = {"users": 8101, "products": 8102, "orders": 8103}
PRODUCTS_INTERNAL_PORT = 8112
# And each background process's /metrics.
LOCAL_METRICS_PORTS = {"products-worker": 9201, "products-relay": 9202, "orders-worker": 9203, "orders-relay": 9204}
SERVICES = tuple(LOCAL_PORTS)


class ConfigError(RuntimeError):
    """A required setting is missing or unusable; the process must not start."""


def _env(name: str):
    """field(metadata=...): the environment variable a setting is read from."""
    return {"env": name}


@dataclass(frozen=True)
class Settings:
    service: str
    database_url: str = field(default="", metadata=_env("DATABASE_URL"))
    amqp_url: str = field(default="amqp://guest:guest@127.0.0.1:5672//", metadata=_env("AMQP_URL"))
    log_level: str = field(default="INFO", metadata=_env("LOG_LEVEL"))
    # -- web services (common/gunicorn_conf.py): where they listen, processes and threads
    bind: str = field(default="127.0.0.1:8000", metadata=_env("BIND"))
    # A second listener for service-to-service calls (products' internal API); none if empty.
    internal_bind: str = field(default="", metadata=_env("INTERNAL_BIND"))
    web_processes: int = field(default=0, metadata=_env("WEB_CONCURRENCY"))  # 0: the service's measured shape
    web_threads: int = field(default=0, metadata=_env("WEB_THREADS"))
    # Connections per process. A thread holds one at a time (the outbox's NOTIFY
    # takes one only once the commit has given its own back), so a pool as large
    # as a process's threads serves it; the overflow is for the probes and /metrics.
    db_pool_size: int = field(default=5, metadata=_env("DB_POOL_SIZE"))
    db_pool_overflow: int = field(default=5, metadata=_env("DB_POOL_OVERFLOW"))
    # A GET that waited longer than this since the gateway took it is answered 503
    # at once (common/http/shedding.py); 0 never sheds. A read takes 1-2 ms, so one
    # that queued 100 ms finds its service far behind; at twice the paced load,
    # 100 ms kept the orders going where 200 and 500 ms shed too little to
    # (docs/benchmarks.md).
    shed_reads_after_ms: int = field(default=100, metadata=_env("SHED_READS_AFTER_MS"))
    # -- event workers: messages handled in one transaction, and held unacked at once
    worker_batch_size: int = field(default=100, metadata=_env("WORKER_BATCH_SIZE"))
    worker_prefetch: int = field(default=200, metadata=_env("WORKER_PREFETCH"))
    # How long a batch waits for more messages after its first: what a transaction
    # costs is paid once per batch, so a few ms of waiting buy most of its CPU back.
    worker_linger_ms: int = field(default=10, metadata=_env("WORKER_LINGER_MS"))
    # -- outbox relays: rows published per confirm round, and the poll that backs up LISTEN/NOTIFY
    relay_batch_size: int = field(default=200, metadata=_env("RELAY_BATCH_SIZE"))
    relay_poll_seconds: float = field(default=5.0, metadata=_env("RELAY_POLL_SECONDS"))
    # After a NOTIFY, how long the relay waits for the commits right behind it (as the consumer's linger).
    relay_linger_ms: int = field(default=10, metadata=_env("RELAY_LINGER_MS"))
    # -- background processes: heartbeat file for --healthcheck, /metrics
    heartbeat_file: str = field(default="", metadata=_env("HEARTBEAT_FILE"))
    metrics_port: int = field(default=0, metadata=_env("METRICS_PORT"))
    metrics_addr: str = field(default="127.0.0.1", metadata=_env("METRICS_ADDR"))
    # -- orders: the products service's internal API
    products_url: str = field(default=f"http://127.0.0.1:{PRODUCTS_INTERNAL_PORT}", metadata=_env("PRODUCTS_URL"))
    products_timeout_ms: int = field(default=1000, metadata=_env("PRODUCTS_TIMEOUT_MS"))
    # -- POSTs that create (common/http/idempotency_keys.py): how long an
    # Idempotency-Key is remembered, and how long a duplicate waits for the first
    idempotency_key_ttl_seconds: int = field(default=86400, metadata=_env("IDEMPOTENCY_KEY_TTL_SECONDS"))
    idempotency_wait_seconds: float = field(default=10.0, metadata=_env("IDEMPOTENCY_WAIT_SECONDS"))
    # -- users: signing tokens (the gateway verifies them)
    jwt_secret: str = field(default="", metadata=_env("JWT_SECRET"))
    # Must equal the consumer key in kong.yml: that is how the gateway finds the secret.
    jwt_issuer: str = field(default="shop-users", metadata=_env("JWT_ISSUER"))
    # Must not exceed the jwt plugin's maximum_expiration in kong.yml.
    jwt_ttl_seconds: int = field(default=900, metadata=_env("JWT_TTL_SECONDS"))
    # Argon2id takes 64 MiB a hash: at most this many hashes (sign-ups, logins) at
    # once per process, so a burst can't take a container past its memory limit.
    # A request that finds none free within password_hash_wait_seconds is a 503.
    password_hashes_at_once: int = field(default=2, metadata=_env("PASSWORD_HASHES_AT_ONCE"))
    password_hash_wait_seconds: float = field(default=5.0, metadata=_env("PASSWORD_HASH_WAIT_SECONDS"))
    # An explicit, loud opt-out for throwaway local setups; never in production.
    allow_weak_jwt_secret: bool = field(default=False, metadata=_env("ALLOW_WEAK_JWT_SECRET"))

    @classmethod
    def from_env(cls, service: str, environ=None) -> "Settings":
        environ = os.environ if environ is None else environ
        if service not in SERVICES:
            raise ConfigError(f"unknown service {service!r} (one of {', '.join(SERVICES)})")
        values = {"service": service, "database_url": local_database_url(service)}
        for setting in fields(cls):
            name = setting.metadata.get("env")
            raw = environ.get(name) if name else None
            if raw is not None and raw != "":
                values[setting.name] = _parse(name, raw, setting.type)
        return cls(**values)

    @property
    def internal_port(self) -> int | None:
        return int(self.internal_bind.rsplit(":", 1)[1]) if self.internal_bind else None

    def flask_config(self) -> dict:
        """The Flask config a service's app is built from (tests lay their own keys on top)."""
        return {
            "SERVICE_NAME": self.service,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": {
                "pool_size": self.db_pool_size,
                "max_overflow": self.db_pool_overflow,
                "pool_timeout": 5,
                "pool_use_lifo": True,  # common/database.py: idle connections are the ones checked
                # An UPDATE of many rows (a batch's products, say) in pages of 100 a
                # round trip, not one each (psycopg2's execute_batch).
                "executemany_mode": "values_plus_batch",
                **JSON_OPTIONS,
                # A database that doesn't answer fails fast instead of hanging a request or a loop.
                "connect_args": {"connect_timeout": 3},
            },
            "SETTINGS": self,
            "LOG_LEVEL": self.log_level,
        }


def local_database_url(service: str) -> str:
    """Natively each service owns a database and a role named after it on the local server."""
    return f"postgresql+psycopg2://{service}@127.0.0.1:5432/{service}"


# -- what belongs to no one service: provisioning the databases of all of them ------


def service_database_url(service: str, environ=None) -> str:
    """Service `service`'s database as the one provisioning them all sees it:
    <SERVICE>_DATABASE_URL (USERS_DATABASE_URL, ...), else the local default."""
    environ = os.environ if environ is None else environ
    return environ.get(f"{service.upper()}_DATABASE_URL") or local_database_url(service)


def admin_database_url(environ=None) -> str:
    """A superuser's URL, to create roles and databases: PG_ADMIN_URL."""
    environ = os.environ if environ is None else environ
    return environ.get("PG_ADMIN_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def _parse(name: str, raw: str, kind):
    if kind in (bool, "bool"):
        if raw not in ("0", "1"):
            raise ConfigError(f"environment variable {name} must be 0 or 1, got {raw!r}")
        return raw == "1"
    if kind in (int, "int", float, "float"):
        number = int if kind in (int, "int") else float
        try:
            return number(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from None
    return raw
