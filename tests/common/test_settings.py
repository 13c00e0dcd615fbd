"""One settings object reads the environment, each default in one place."""

import ast
from pathlib import Path

import pytest

from common.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_defaults_are_the_native_stacks():
    settings = Settings.from_env("orders", environ={})

    assert settings.database_url == "postgresql+psycopg2://orders@127.0.0.1:5432/orders"
    assert settings.amqp_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert settings.products_url == "http://127.0.0.1:8112"


def test_the_environment_wins_and_is_parsed():
    settings = Settings.from_env(
        "products",
        environ={
            "WORKER_BATCH_SIZE": "7",
            "RELAY_POLL_SECONDS": "0.5",
            "ALLOW_WEAK_JWT_SECRET": "1",
            "INTERNAL_BIND": "0.0.0.0:8001",
        },
    )

    assert (settings.worker_batch_size, settings.relay_poll_seconds, settings.allow_weak_jwt_secret) == (7, 0.5, True)
    assert settings.internal_port == 8001


@pytest.mark.parametrize(
    "environ, complaint",
    [
        ({"DB_POOL_SIZE": "five"}, "DB_POOL_SIZE must be a number"),
        ({"ALLOW_WEAK_JWT_SECRET": "yes"}, "ALLOW_WEAK_JWT_SECRET must be 0 or 1"),
    ],
)
def test_an_unusable_value_stops_the_process(environ, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env("users", environ=environ)


def test_an_unknown_service_is_refused():
    with pytest.raises(ConfigError, match="unknown service"):
        Settings.from_env("payments", environ={})


def environment_reads(path: Path) -> set[str]:
    """The variables a module reads with os.environ[...], os.environ.get/setdefault(...)
    or os.getenv(...); "?" for any use of os.environ this can't name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and _is_os(node.value, "environ"):
            found.add(getattr(node.slice, "value", "?"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (_is_os(node.func.value, "environ") or _is_os(node.func, "getenv"))
        ):
            found.add(getattr(node.args[0], "value", "?") if node.args else "?")
    return found


def _is_os(node, attribute: str) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == attribute and getattr(node.value, "id", None) == "os"


def test_nothing_else_reads_the_systems_settings_from_the_environment():
    # Each read outside common/settings.py would be a second default to keep in step.
    reads = {
        (str(path.relative_to(ROOT)), name)
        for package in ("common", "users", "products", "orders")
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "common" / "settings.py" and "migrations" not in path.parts
        for name in environment_reads(path)
    }
    # Gunicorn's config needs SERVICE to know whose settings to read; prometheus_client
    # keeps its multiprocess directory in the environment by its own design.
    assert reads == {
        ("common/http/gunicorn_conf.py", "SERVICE"),
        ("common/http/gunicorn_conf.py", "PROMETHEUS_MULTIPROC_DIR"),
        ("common/metrics.py", "PROMETHEUS_MULTIPROC_DIR"),
    }
