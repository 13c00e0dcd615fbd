"""The event catalogue in common/events/__init__.py is the one place it is
written: this holds the code to it, row by row (the version producers write,
who produces, the queue, the worker and its handler), and every event type the
contracts declare to a row."""

import importlib
import pathlib

import pytest

import common.events
from common.events import contracts, queues
from common.messaging.event import EventType
from tests.support import ROOT, offline_app

SERVICES_WITH_WORKERS = ("products", "orders")


def catalogue() -> list[dict]:
    lines = common.events.__doc__.splitlines()
    header = next(index for index, line in enumerate(lines) if line.split()[:2] == ["event", "v"])
    names = lines[header].split()
    rows = []
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        rows.append(dict(zip(names, line.split(), strict=True)))
    return rows


def event_types() -> dict[str, EventType]:
    return {value.routing_key: value for value in vars(contracts).values() if isinstance(value, EventType)}


def consumers() -> dict[str, object]:
    """Each worker's consumer, as its process builds it: {"products-worker": ...}."""
    return {
        f"{service}-worker": importlib.import_module(f"{service}.worker").consumer(offline_app(service))
        for service in SERVICES_WITH_WORKERS
    }


def test_every_event_type_has_one_row():
    assert sorted(row["event"] for row in catalogue()) == sorted(event_types())


@pytest.mark.parametrize("row", catalogue(), ids=lambda row: row["event"])
def test_the_code_is_as_the_row_says(row):
    event_type = event_types()[row["event"]]
    assert str(event_type.version) == row["v"]

    queue = next(queue for queue in queues.CONSUMER_QUEUES if queue.name == row["queue"])
    assert row["event"] in {binding.routing_key for binding in queue.bindings}

    consumer = consumers()[row["consumer"]]
    assert consumer.queue.name == row["queue"]
    _, handler = consumer.handlers[row["event"]]
    assert f"{handler.__module__}.{handler.__name__}" == row["handler"]


@pytest.mark.parametrize("row", catalogue(), ids=lambda row: row["event"])
def test_only_the_producer_builds_it(row):
    constant = next(name for name, value in vars(contracts).items() if value is event_types()[row["event"]])
    builders = {
        service
        for service in ("users", "products", "orders")
        for path in pathlib.Path(ROOT, service).rglob("*.py")
        if f"contracts.{constant}.new(" in path.read_text()
    }
    assert builders == {row["producer"]}
