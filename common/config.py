"""Configuration read once from the environment (12-factor).

Each service's create_app() starts from `service_config()` and lays its own keys
and any test overrides on top, the way the Flask tutorial's factory does.
"""
import os


class ConfigError(RuntimeError):
    """A required setting is missing or unusable; the process must not start."""


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigError(f"environment variable {name} must be set")
    return value


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None


def service_config(service: str) -> dict:
    """Settings every service has: its own database, the broker, logging."""
    return {
        "SERVICE_NAME": service,
        # Natively each service owns a database named after it on the local server.
        "SQLALCHEMY_DATABASE_URI": env(
            "DATABASE_URL", f"postgresql+psycopg2://{service}@127.0.0.1:5432/{service}"
        ),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            # Survive PostgreSQL restarts: stale pooled connections are replaced, not raised.
            "pool_pre_ping": True,
            "pool_size": env_int("DB_POOL_SIZE", 5),
            "max_overflow": env_int("DB_POOL_OVERFLOW", 5),
            "pool_timeout": 5,
            # A database that doesn't answer fails fast instead of hanging a request or a loop.
            "connect_args": {"connect_timeout": 3},
        },
        "AMQP_URL": env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
        # Unacked messages a worker holds at once (RabbitMQ suggests 100-300 for throughput).
        "WORKER_PREFETCH": env_int("WORKER_PREFETCH", 100),
        "LOG_LEVEL": env("LOG_LEVEL", "INFO"),
    }
