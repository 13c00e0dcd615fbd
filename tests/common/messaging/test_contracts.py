"""The event contracts: what producers may send and consumers accept."""

import uuid

import pytest

from common.messaging import contracts
from common.messaging.contracts import InvalidEvent

SHORTAGE = {"product_id": 3, "requested": 2, "available": 1}


def test_a_constructor_builds_a_complete_event_that_its_consumer_accepts():
    event = contracts.ORDER_CREATED.new(order_id=7, user_id=1, items=[{"product_id": 3, "quantity": 2}])

    assert uuid.UUID(event["event_id"]) and event["occurred_at"]
    assert (event["type"], event["version"]) == ("order.created", 1)
    loaded = contracts.ORDER_CREATED.load(event)
    assert (loaded["order_id"], loaded["items"]) == (7, [{"product_id": 3, "quantity": 2}])


@pytest.mark.parametrize(
    "event_type, fields",
    [
        (contracts.ORDER_CREATED, {"order_id": 7, "user_id": 1, "items": []}),
        (contracts.ORDER_CREATED, {"order_id": 7, "user_id": 1, "items": [{"product_id": 3, "quantity": 1}] * 2}),
        (contracts.ORDER_CREATED, {"order_id": "7", "user_id": 1, "items": [{"product_id": 3, "quantity": 1}]}),
        (contracts.ORDER_CANCELLED, {"order_id": 7, "user_id": 1, "items": []}),
        (contracts.ORDER_CANCELLED, {"order_id": 7, "user_id": 1, "items": [{"product_id": 3, "quantity": 1}] * 2}),
        (contracts.ORDER_CANCELLED, {"order_id": 7, "user_id": 1, "items": [{"product_id": 3, "quantity": 0}]}),
        (
            contracts.ORDER_CANCELLED,
            {"order_id": 7, "user_id": 1, "items": [{"product_id": 3, "quantity": 1}], "reason": "changed my mind"},
        ),
        (contracts.INVENTORY_RESERVED, {"order_id": 7, "shortages": [SHORTAGE]}),
        (contracts.INVENTORY_RESERVED, {"order_id": 7, "reason": "no"}),
        (contracts.INVENTORY_REJECTED, {"order_id": 7, "shortages": [SHORTAGE]}),
        (contracts.INVENTORY_REJECTED, {"order_id": 7, "reason": "Not enough stock."}),
        (contracts.INVENTORY_REJECTED, {"order_id": 7, "reason": "", "shortages": [SHORTAGE]}),
    ],
    ids=[
        "no-lines",
        "a-product-twice",
        "id-as-string",
        "cancelled-without-lines",
        "cancelled-a-product-twice",
        "cancelled-nothing-of-a-line",
        "cancelled-with-a-reason",
        "reserved-with-shortages",
        "reserved-with-reason",
        "rejected-without-reason",
        "rejected-without-shortages",
        "rejected-with-empty-reason",
    ],
)
def test_an_inconsistent_event_is_refused_by_producer_and_consumer(event_type, fields):
    with pytest.raises(ValueError, match=event_type.routing_key):
        event_type.new(**fields)
    # And a consumer refuses the same, should a producer build it by hand.
    hand_made = {
        "event_id": str(uuid.uuid4()),
        "type": event_type.routing_key,
        "version": 1,
        "occurred_at": "2026-12-01T10:00:00+00:00",
        **fields,
    }
    with pytest.raises(InvalidEvent):
        event_type.load(hand_made)


def test_a_newer_event_with_an_added_field_is_accepted_by_an_older_consumer():
    newer = {**contracts.INVENTORY_RESERVED.new(order_id=7), "warehouse": "north", "reserved_at": "later"}

    assert contracts.INVENTORY_RESERVED.load(newer)["order_id"] == 7


def test_an_unknown_version_is_refused_not_guessed_at():
    event = {**contracts.INVENTORY_RESERVED.new(order_id=7), "version": 2}

    with pytest.raises(InvalidEvent, match="version 2"):
        contracts.INVENTORY_RESERVED.load(event)


def test_an_event_routed_as_another_type_is_refused():
    reserved = contracts.INVENTORY_RESERVED.new(order_id=7)

    with pytest.raises(InvalidEvent, match="routed as"):
        contracts.decode(reserved, contracts.INVENTORY_REJECTED.routing_key)
    assert contracts.decode(reserved, "inventory.reserved")[0] is contracts.INVENTORY_RESERVED


def test_a_consumer_upgraded_to_two_versions_takes_both():
    # The upgrade path the module describes: the consumer learns version 2 first,
    # producers keep writing 1 until every consumer has.
    from common.messaging.contracts import EventType, InventoryReservedSchema

    class ReservedV2(InventoryReservedSchema):
        pass

    both = EventType("inventory.reserved", 1, {1: InventoryReservedSchema(), 2: ReservedV2()})
    assert both.new(order_id=7)["version"] == 1
    assert both.load({**both.new(order_id=7), "version": 2})["order_id"] == 7


def test_a_cancellation_names_the_order_and_its_lines():
    event = contracts.ORDER_CANCELLED.new(order_id=7, user_id=1, items=[{"product_id": 3, "quantity": 2}])

    assert contracts.decode(event, "order.cancelled")[0] is contracts.ORDER_CANCELLED
    assert contracts.ORDER_CANCELLED.load(event)["items"] == [{"product_id": 3, "quantity": 2}]
