"""The reservation rule, on the database alone: all lines or none, never below zero.

No broker here: reserve_stock is a domain function, called in a transaction
(the consumer's, in production; the test's own here).
"""

import pytest

from common.messaging import contracts
from products.inventory import lock_products, reserve_stock
from products.models import db

pytestmark = pytest.mark.integration


def order_created(order_id=1, **lines):
    return contracts.ORDER_CREATED.new(
        order_id=order_id, user_id=1, items=[{"product_id": int(pid), "quantity": qty} for pid, qty in lines.items()]
    )


@pytest.fixture
def reserve(products_app):
    """reserve_stock in a transaction of its own, committed as the consumer would."""

    def _reserve(event):
        with products_app.app_context():
            lock_products([event])
            outcomes = reserve_stock(event)
            db.session.commit()
            return outcomes

    return _reserve


def test_enough_stock_takes_every_line(reserve, make_product, stock_of):
    keyboard, mouse = make_product(quantity=50), make_product(quantity=5)

    [outcome] = reserve(order_created(order_id=7, **{str(keyboard): 3, str(mouse): 5}))

    assert isinstance(outcome, contracts.InventoryReserved) and outcome.order_id == 7
    assert (stock_of(keyboard), stock_of(mouse)) == (47, 0)


def test_one_short_line_takes_nothing_and_says_why(reserve, make_product, stock_of):
    plenty, scarce = make_product(quantity=10), make_product(quantity=1)

    [outcome] = reserve(order_created(order_id=8, **{str(plenty): 2, str(scarce): 2, "999999": 1}))

    assert isinstance(outcome, contracts.InventoryRejected)
    assert outcome.shortages == [
        contracts.Shortage(product_id=scarce, requested=2, available=1),
        contracts.Shortage(product_id=999999, requested=1, available=0),
    ]
    assert f"product {scarce}: 1 left, 2 requested" in outcome.reason
    assert (stock_of(plenty), stock_of(scarce)) == (10, 1)


def test_the_last_units_go_to_the_first_order_only(reserve, make_product, stock_of):
    product = make_product(quantity=3)

    first = reserve(order_created(order_id=1, **{str(product): 3}))
    second = reserve(order_created(order_id=2, **{str(product): 1}))

    assert [first[0].type, second[0].type] == ["inventory.reserved", "inventory.rejected"]
    assert stock_of(product) == 0
