"""A service's database schema: bringing it up to date, and telling whether it is.

    python -m common.migrate users          # before the service starts: the container
                                            # entrypoint, the native stack, a Kubernetes Job
    python -m common.migrate users --wait   # until someone else has: a worker's init container

It needs the service's database and nothing else: not the jwt secret, not the
broker. Each service's migrations live in `<service>/migrations/` (Alembic, run
through Flask-Migrate); to write one, `flask --app products db migrate -m "what
changed"`, read it, commit it.

A service's /readyz says "not ready" while its database is behind the migrations
its code was written for, so new code never serves an old schema.
"""

import argparse
import importlib
import logging
import os
import sys
import time

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import Migrate, upgrade
from sqlalchemy import create_engine

from common.database import DATABASE_UNAVAILABLE
from common.settings import SERVICES, Settings

log = logging.getLogger(__name__)


def migrations_directory(service: str) -> str:
    package = importlib.import_module(service)
    return os.path.join(os.path.dirname(package.__file__), "migrations")


def heads(directory: str) -> set[str]:
    """The revisions the code's migrations end in."""
    config = Config()
    config.set_main_option("script_location", directory)
    return set(ScriptDirectory.from_config(config).get_heads())


def current(connection) -> set[str]:
    """The revisions the database is at."""
    return set(MigrationContext.configure(connection).get_current_heads())


def migration_app(service: str, database_url: str) -> Flask:
    """A bare app to run the service's migrations in: only its database object
    and its migrations, none of its other settings."""
    db = importlib.import_module(f"{service}.models").db
    app = Flask(service)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    Migrate(app, db, directory=migrations_directory(service))
    return app


def migrate(service: str, database_url: str) -> None:
    """Apply the service's migrations to its database."""
    with migration_app(service, database_url).app_context():
        upgrade()


def wait_until_current(service: str, database_url: str, interval: float = 2.0) -> None:
    """Block until the database's schema is the code's: for a process that must not
    start before its migrations ran elsewhere (a Kubernetes Job, say)."""
    wanted = heads(migrations_directory(service))
    engine = create_engine(database_url, pool_pre_ping=True)
    waited = 0.0
    try:
        while True:
            try:
                with engine.connect() as connection:
                    if current(connection) == wanted:
                        return
            except DATABASE_UNAVAILABLE as exc:
                log.info("database unreachable (%s)", exc.orig or exc)
            if waited % 30 < interval:
                log.info("waiting for %s's schema to reach %s", service, ", ".join(sorted(wanted)))
            time.sleep(interval)
            waited += interval
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.migrate", description=__doc__.strip().splitlines()[0])
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--wait", action="store_true", help="don't migrate: wait until the schema is current")
    args = parser.parse_args(argv)
    settings = Settings.from_env(args.service)
    logging.basicConfig(level=settings.log_level, format="%(message)s")
    if args.wait:
        wait_until_current(settings.service, settings.database_url)
    else:
        migrate(settings.service, settings.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
