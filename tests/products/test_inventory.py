"""The reservation rule, on the database alone: all lines or none, never below
zero; and a cancellation gives back exactly what its order took, once, in
whichever order the two events come.

No broker here: reserve_stock and release_stock are domain functions, called in
a transaction (the consumer's, in production; the test's own here).
"""

import pytest

from common.events import contracts
from products.inventory import MAX_STOCK, lock_events, release_stock, reserve_stock
from products.models import Product, Reservation, db

pytestmark = pytest.mark.integration


def lines(**quantities):
    return [{"product_id": int(pid), "quantity": qty} for pid, qty in quantities.items()]


def order_created(order_id=1, **quantities):
    return contracts.ORDER_CREATED.new(order_id=order_id, user_id=1, items=lines(**quantities))


def order_cancelled(order_id=1, **quantities):
    return contracts.ORDER_CANCELLED.new(order_id=order_id, user_id=1, items=lines(**quantities))


@pytest.fixture
def handle(products_app):
    """A handler in a transaction of its own, locked and committed as the consumer would."""

    def _handle(handler, event):
        with products_app.app_context():
            locked = lock_events([event])
            outcomes = handler(event, locked)
            locked.save()
            db.session.commit()
            return outcomes

    return _handle


@pytest.fixture
def reserve(handle):
    return lambda event: handle(reserve_stock, event)


@pytest.fixture
def release(handle):
    return lambda event: handle(release_stock, event)


@pytest.fixture
def recorded(products_app):
    def _recorded(order_id):
        with products_app.app_context():
            return db.session.get(Reservation, order_id).status

    return _recorded


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


def test_an_order_of_100_short_lines_is_rejected_with_every_shortage(reserve, make_product, stock_of):
    # Naming every line made a reason past the contract's 2,000 characters: the
    # event couldn't be built, the message was dead-lettered, the order PENDING for ever.
    products = [make_product(quantity=0) for _ in range(100)]

    [outcome] = reserve(order_created(order_id=11, **{str(product): 10_000 for product in products}))

    assert isinstance(outcome, contracts.InventoryRejected)
    assert [shortage.product_id for shortage in outcome.shortages] == sorted(products)
    assert len(outcome.reason) <= contracts.MAX_REASON
    assert outcome.reason.startswith(f"Not enough stock for product {min(products)}: 0 left, 10000 requested; ")
    assert outcome.reason.endswith(" more lines.")
    assert all(stock_of(product) == 0 for product in products)


def test_the_last_units_go_to_the_first_order_only(reserve, make_product, stock_of):
    product = make_product(quantity=3)

    first = reserve(order_created(order_id=1, **{str(product): 3}))
    second = reserve(order_created(order_id=2, **{str(product): 1}))

    assert [first[0].type, second[0].type] == ["inventory.reserved", "inventory.rejected"]
    assert stock_of(product) == 0


# -- cancellations ---------------------------------------------------------------------


def test_cancelling_a_reserved_order_gives_its_stock_back(reserve, release, make_product, stock_of, recorded):
    keyboard, mouse = make_product(quantity=10), make_product(quantity=4)
    order = {str(keyboard): 3, str(mouse): 4}
    reserve(order_created(order_id=5, **order))
    assert (stock_of(keyboard), stock_of(mouse)) == (7, 0)

    assert release(order_cancelled(order_id=5, **order)) == []

    assert (stock_of(keyboard), stock_of(mouse)) == (10, 4)
    assert recorded(5) == "RELEASED"


def test_a_cancellation_gives_back_on_top_of_a_full_shelf(
    reserve, release, make_product, stock_of, recorded, products_app
):
    # The shelf may be restocked to the API's maximum while an order holds units;
    # giving those back went past INTEGER and rolled the whole return back, the
    # other line's too, until the event was dead-lettered and the units lost.
    full, other = make_product(quantity=MAX_STOCK), make_product(quantity=10)
    order = {str(full): 1, str(other): 3}
    reserve(order_created(order_id=9, **order))
    with products_app.app_context():  # restocked by 1 meanwhile, as POST /products/{id}/stock allows
        db.session.execute(db.update(Product).where(Product.id == full).values(quantity=MAX_STOCK))
        db.session.commit()

    release(order_cancelled(order_id=9, **order))

    assert (stock_of(full), stock_of(other)) == (MAX_STOCK + 1, 10)
    assert recorded(9) == "RELEASED"


def test_a_second_cancellation_gives_nothing_back(reserve, release, make_product, stock_of):
    # Not a redelivery (the claims absorb those): another event for the same order.
    product = make_product(quantity=10)
    reserve(order_created(order_id=5, **{str(product): 3}))

    release(order_cancelled(order_id=5, **{str(product): 3}))
    release(order_cancelled(order_id=5, **{str(product): 3}))

    assert stock_of(product) == 10


def test_a_cancellation_before_the_reservation_means_it_takes_nothing(
    reserve, release, make_product, stock_of, recorded
):
    product = make_product(quantity=10)

    release(order_cancelled(order_id=6, **{str(product): 3}))
    assert recorded(6) == "CANCELLED"
    assert reserve(order_created(order_id=6, **{str(product): 3})) == []  # nothing to announce: orders has cancelled it

    assert stock_of(product) == 10
    assert recorded(6) == "CANCELLED"


def test_cancelling_a_rejected_order_gives_nothing_back(reserve, release, make_product, stock_of, recorded):
    product = make_product(quantity=2)
    [outcome] = reserve(order_created(order_id=9, **{str(product): 3}))
    assert outcome.type == "inventory.rejected"

    release(order_cancelled(order_id=9, **{str(product): 3}))

    assert stock_of(product) == 2
    assert recorded(9) == "REJECTED"


def test_a_cancellation_gives_back_what_was_taken_not_what_it_says(reserve, release, make_product, stock_of):
    # products' own record decides: an event can't make it give back more than it took.
    product = make_product(quantity=10)
    reserve(order_created(order_id=3, **{str(product): 2}))

    release(order_cancelled(order_id=3, **{str(product): 9}))

    assert stock_of(product) == 10
