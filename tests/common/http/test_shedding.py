"""Load shedding (common/http/shedding.py): a read that waited longer than
SHED_READS_AFTER_MS since the gateway took it is answered 503 at once, and
nothing else ever is. The stamp is Kong's (tests/gateway/test_hardening.py
proves Kong sets it and replaces a client's); here the real products app, its
test client standing in for its public listener, decides on it."""

import dataclasses
import time
from contextlib import contextmanager

import pytest
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

BUDGET_MS = 500
SHED = {"service": "products"}


@pytest.fixture
def client(products_app, clean_products):
    settings = products_app.config["SETTINGS"]
    products_app.config["SETTINGS"] = dataclasses.replace(settings, shed_reads_after_ms=BUDGET_MS)
    yield products_app.test_client()
    products_app.config["SETTINGS"] = settings


def taken(ms_ago: float) -> dict:
    return {"X-Request-Start": str(int(time.time() * 1000 - ms_ago))}


@contextmanager
def counting_sheds():
    before = REGISTRY.get_sample_value("shop_http_reads_shed_total", SHED) or 0
    counted = []
    yield counted
    counted.append((REGISTRY.get_sample_value("shop_http_reads_shed_total", SHED) or 0) - before)


@pytest.mark.parametrize("path", ["/products", "/products/{id}"])
def test_a_read_that_waited_too_long_is_answered_503_at_once(client, make_product, path):
    product = make_product()
    with counting_sheds() as shed:
        response = client.get(path.format(id=product), headers={**taken(BUDGET_MS + 200), "X-Request-ID": "late-1"})

    assert response.status_code == 503
    assert response.get_json() == {"message": "The service is busy; try again shortly."}
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-ID"] == "late-1"  # logged and answered under its id, like any request
    assert shed == [1]


def test_a_read_within_the_budget_is_served(client, make_product):
    product = make_product(name="Lamp")
    with counting_sheds() as shed:
        response = client.get(f"/products/{product}", headers=taken(BUDGET_MS - 200))

    assert response.status_code == 200
    assert response.get_json()["name"] == "Lamp"
    assert shed == [0]


def test_a_write_is_never_shed_however_long_it_waited(client):
    with counting_sheds() as shed:
        response = client.post(
            "/products",
            json={"name": "Desk", "price": 100.0, "quantity": 3},
            headers={**taken(60_000), "X-User-Id": "7"},
        )

    assert response.status_code == 201
    assert shed == [0]


@pytest.mark.parametrize(
    "stamp",
    [
        None,  # not through the gateway: the internal lookup, a probe
        "",
        "soon",
        "1.5e12",
        "-1",
        "١٧٠٠٠٠٠٠٠٠٠٠٠",  # digits, but not ASCII ones
        str(int(time.time() * 1000) + 3_600_000),  # ahead of this clock
    ],
)
def test_a_read_without_a_usable_stamp_is_served(client, make_product, stamp):
    product = make_product()
    headers = {} if stamp is None else {"X-Request-Start": stamp}
    with counting_sheds() as shed:
        response = client.get(f"/products/{product}", headers=headers)

    assert response.status_code == 200
    assert shed == [0]


def test_with_no_budget_nothing_is_shed(products_app, clean_products, make_product):
    settings = products_app.config["SETTINGS"]
    products_app.config["SETTINGS"] = dataclasses.replace(settings, shed_reads_after_ms=0)
    try:
        response = products_app.test_client().get(f"/products/{make_product()}", headers=taken(60_000))
    finally:
        products_app.config["SETTINGS"] = settings

    assert response.status_code == 200
