import pytest


@pytest.fixture
def client(products_app, clean_products):
    return products_app.test_client()
