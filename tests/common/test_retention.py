"""The bookkeeping tables are pruned as their guarantees allow (common/retention.py), against real PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from common import retention
from orders import relay as orders_relay
from orders.models import ProcessedEvent as OrdersProcessedEvent
from orders.models import db as orders_db
from products import relay as products_relay
from products.models import RELEASED, RESERVED, IdempotencyKey, OutboxMessage, ProcessedEvent, Reservation, db

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
WEEK_AND_A_DAY = NOW - timedelta(days=8)  # past the duplicate window (7 days)
SIX_DAYS = NOW - timedelta(days=6)
TWO_DAYS = NOW - timedelta(days=2)  # past the keys' 24 h and the sent outbox's day
AN_HOUR = NOW - timedelta(hours=1)


def add(session, model, *rows):
    session.execute(insert(model), list(rows))


def remaining(session, column) -> set:
    return set(session.scalars(select(column)))


def event_id(label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, label))


def add_an_old_and_a_recent_event(session, model) -> None:
    """Two processed events: one past the duplicate window, one within it."""
    add(
        session,
        model,
        {"event_id": event_id("old"), "processed_at": WEEK_AND_A_DAY},
        {"event_id": event_id("in the window"), "processed_at": SIX_DAYS},
    )


def test_products_keeps_what_its_guarantees_need_and_no_more(products_app, clean_products):
    with products_app.app_context():
        session = db.session
        add_an_old_and_a_recent_event(session, ProcessedEvent)
        add(
            session,
            IdempotencyKey,
            {"user_id": 1, "key": "expired", "fingerprint": "f", "status": 201, "body": "{}", "created_at": TWO_DAYS},
            {"user_id": 1, "key": "live", "fingerprint": "f", "status": 201, "body": "{}", "created_at": AN_HOUR},
        )
        outbox_row = {"routing_key": "inventory.reserved", "payload": {}, "headers": {}}
        add(
            session,
            OutboxMessage,
            {**outbox_row, "event_id": event_id("sent long ago"), "published_at": TWO_DAYS},
            {**outbox_row, "event_id": event_id("sent lately"), "published_at": AN_HOUR},
            {**outbox_row, "event_id": event_id("never sent"), "created_at": WEEK_AND_A_DAY, "published_at": None},
        )
        add(
            session,
            Reservation,
            {"order_id": 1, "status": RESERVED, "taken": [], "recorded_at": WEEK_AND_A_DAY},
            {"order_id": 2, "status": RELEASED, "taken": [], "recorded_at": WEEK_AND_A_DAY},
            {"order_id": 3, "status": RELEASED, "taken": [], "recorded_at": SIX_DAYS},
        )
        session.commit()

        retention.prune(session, products_relay.retentions(products_app.config["SETTINGS"]))

        assert remaining(session, ProcessedEvent.event_id) == {event_id("in the window")}
        assert remaining(session, IdempotencyKey.key) == {"live"}
        assert remaining(session, OutboxMessage.event_id) == {event_id("sent lately"), event_id("never sent")}
        # A RESERVED reservation is what a cancel gives back, at any age.
        assert remaining(session, Reservation.order_id) == {1, 3}


def test_a_large_backlog_goes_in_bounded_rounds_of_batches(products_app, clean_products, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 3)
    retentions = products_relay.retentions(products_app.config["SETTINGS"])
    with products_app.app_context():
        rows = [{"event_id": event_id(f"old {n}"), "processed_at": WEEK_AND_A_DAY} for n in range(10)]
        add(db.session, ProcessedEvent, *rows)
        db.session.commit()

        assert retention.prune(db.session, retentions, batches=2) is True  # 6 gone, more to go
        assert len(remaining(db.session, ProcessedEvent.event_id)) == 4
        assert retention.prune(db.session, retentions, batches=2) is False
        assert remaining(db.session, ProcessedEvent.event_id) == set()


def test_orders_prunes_its_processed_events(orders_app, clean_orders):
    with orders_app.app_context():
        session = orders_db.session
        add_an_old_and_a_recent_event(session, OrdersProcessedEvent)
        session.commit()
        retention.prune(session, orders_relay.retentions(orders_app.config["SETTINGS"]))
        assert remaining(session, OrdersProcessedEvent.event_id) == {event_id("in the window")}
