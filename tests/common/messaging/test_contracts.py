"""The event contracts: what producers may send and consumers accept."""

import json
import uuid

import msgspec
import pytest

from common.events import contracts
from common.events.contracts import InventoryReserved
from common.messaging.event import EventType, InvalidEvent, payload

SHORTAGE = {"product_id": 3, "requested": 2, "available": 1}


def encoded(event_type: EventType, **fields) -> bytes:
    """A body as a producer would send it, built by hand (what a contract would refuse to build)."""
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": event_type.routing_key,
            "version": 1,
            "occurred_at": "2026-12-01T10:00:00+00:00",
            **fields,
        }
    ).encode()


def test_a_constructor_builds_a_complete_event_that_its_consumer_accepts():
    event = contracts.ORDER_CREATED.new(order_id=7, user_id=1, items=[{"product_id": 3, "quantity": 2}])

    body = payload(event)
    assert uuid.UUID(body["event_id"]) and body["occurred_at"]
    assert (body["type"], body["version"]) == ("order.created", 2)
    received = contracts.ORDER_CREATED.decode(msgspec.json.encode(body))
    assert (received.order_id, received.items[0].product_id, received.items[0].quantity) == (7, 3, 2)


def test_an_order_created_of_version_1_is_still_taken():
    # Published by orders of a release before cancelling; may still be queued, or
    # in the dead letters, when products is upgraded (contracts.ORDER_CREATED says why 2).
    body = encoded(contracts.ORDER_CREATED, order_id=7, user_id=1, items=[{"product_id": 3, "quantity": 2}])
    assert json.loads(body)["version"] == 1
    assert contracts.ORDER_CREATED.decode(body).order_id == 7


@pytest.mark.parametrize(
    "event_type, fields",
    [
        (contracts.ORDER_CREATED, {"order_id": 7, "user_id": 1, "items": []}),
        (contracts.ORDER_CREATED, {"order_id": 7, "user_id": 1, "items": [{"product_id": 3, "quantity": 1}] * 2}),
        (contracts.ORDER_CREATED, {"order_id": "7", "user_id": 1, "items": [{"product_id": 3, "quantity": 1}]}),
        (contracts.ORDER_CREATED, {"order_id": True, "user_id": 1, "items": [{"product_id": 3, "quantity": 1}]}),
        (contracts.ORDER_CREATED, {"order_id": 7, "user_id": 1, "items": [{"product_id": 3, "quantity": 1.0}]}),
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
        "id-as-boolean",
        "quantity-as-float",
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
    with pytest.raises(InvalidEvent):
        event_type.decode(encoded(event_type, **fields))


def test_a_newer_event_with_an_added_field_is_accepted_by_an_older_consumer():
    newer = {**payload(contracts.INVENTORY_RESERVED.new(order_id=7)), "warehouse": "north", "reserved_at": "later"}

    assert contracts.INVENTORY_RESERVED.decode(json.dumps(newer).encode()).order_id == 7


def test_an_unknown_version_is_refused_not_guessed_at():
    event = {**payload(contracts.INVENTORY_RESERVED.new(order_id=7)), "version": 2}

    with pytest.raises(InvalidEvent, match="version 2"):
        contracts.INVENTORY_RESERVED.decode(json.dumps(event).encode())


@pytest.mark.parametrize(
    "body",
    [b"\x80 not json", b"[1, 2]", b'{"type": "inventory.reserved", "version": 1}'],
    ids=["not-json", "not-an-object", "no-fields"],
)
def test_what_isnt_an_event_is_refused(body):
    with pytest.raises(InvalidEvent):
        contracts.INVENTORY_RESERVED.decode(body)


def test_an_event_routed_as_another_type_is_refused():
    reserved = msgspec.json.encode(payload(contracts.INVENTORY_RESERVED.new(order_id=7)))

    with pytest.raises(InvalidEvent, match="routed as"):
        contracts.INVENTORY_REJECTED.decode(reserved)
    assert contracts.INVENTORY_RESERVED.decode(reserved).order_id == 7


def test_a_consumer_upgraded_to_two_versions_takes_both():
    # The upgrade path the module describes: the consumer learns version 2 first,
    # producers keep writing 1 until every consumer has.
    class ReservedV2(InventoryReserved, kw_only=True, frozen=True):
        warehouse: str = "main"

    both = EventType("inventory.reserved", 1, {1: InventoryReserved, 2: ReservedV2})
    assert both.new(order_id=7).version == 1
    v2 = {**payload(both.new(order_id=7)), "version": 2, "warehouse": "north"}
    assert both.decode(json.dumps(v2).encode()).warehouse == "north"


def test_a_cancellation_names_the_order_and_its_lines():
    event = contracts.ORDER_CANCELLED.new(order_id=7, user_id=1, items=[{"product_id": 3, "quantity": 2}])

    received = contracts.ORDER_CANCELLED.decode(msgspec.json.encode(payload(event)))
    assert payload(received)["items"] == [{"product_id": 3, "quantity": 2}]
    assert payload(received)["type"] == "order.cancelled"
