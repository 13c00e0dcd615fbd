import pytest

from tests.support import TEST_SECRET, config_for, empty_tables, fresh_database, migrated_app
from users import create_app
from users.models import db


@pytest.fixture(scope="session")
def users_app(pg_url, amqp_url):
    config = config_for(
        "users",
        fresh_database(pg_url, "users_test"),
        amqp_url,
        JWT_SECRET=TEST_SECRET,
        JWT_ISSUER="shop-users",
        JWT_TTL_SECONDS=900,
    )
    return migrated_app(create_app, config)


@pytest.fixture
def client(users_app):
    yield users_app.test_client()
    empty_tables(users_app, db)


@pytest.fixture
def register(client):
    """Factory: register a user, returning the response."""

    def _register(email="ann@example.com", password="a-strong-password-123"):
        return client.post("/register", json={"email": email, "password": password})

    return _register
