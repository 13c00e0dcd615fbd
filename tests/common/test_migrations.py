"""Each service's migrations build exactly the schema its models declare, and undo it."""

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine

from common.migrate import migrate, migration_app
from common.settings import SERVICES
from tests.support import fresh_database
from tests.support import test_database as database_name

pytestmark = pytest.mark.integration


@pytest.fixture(params=SERVICES)
def service(request):
    return request.param


def differences(service: str, url: str) -> list:
    """What autogenerate would write to bring the database to the models (nothing, if they agree)."""
    metadata = importlib.import_module(f"{service}.models").db.metadata
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()


def test_the_migrations_build_what_the_models_declare(service, pg_url):
    url = fresh_database(pg_url, database_name(f"{service}_schema"))
    migrate(service, url)
    assert differences(service, url) == []


def test_every_migration_can_be_undone_and_done_again(service, pg_url):
    url = fresh_database(pg_url, database_name(f"{service}_schema"))
    migrate(service, url)
    with migration_app(service, url).app_context():
        downgrade(revision="base")
        upgrade()
    assert differences(service, url) == []
