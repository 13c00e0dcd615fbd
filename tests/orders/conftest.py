import pytest


@pytest.fixture
def client(orders_app, clean_orders, clean_products):
    return orders_app.test_client()
