import pytest

from tests.support import TEST_SECRET, config_for, empty_tables, fresh_database, migrated_app, test_database
from users import create_app
from users.models import db


@pytest.fixture(scope="session")
def users_app(pg_url, amqp_url):
    config = config_for(
        "users",
        fresh_database(pg_url, test_database("users")),
        amqp_url,
        jwt_secret=TEST_SECRET,
        jwt_issuer="shop-users",
        jwt_ttl_seconds=900,
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
