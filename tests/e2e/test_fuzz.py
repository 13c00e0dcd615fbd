"""Property-based fuzzing of every service's published OpenAPI document, through
the gateway, with schemathesis: whatever it generates, valid or not, no answer is
a 5xx and every answer matches the document.

FUZZ_EXAMPLES bounds the examples per operation (25 by default, for CI); the
CONTRIBUTING.md has the command for a long run.
"""

import os
import random

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import GATEWAY_URL
from tests.support import EachRequestFromANewAddress, fresh_loopback_addresses

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# Not negative_data_rejection: it mutates the Authorization header among others,
# and the token every call carries (headers=) undoes that mutation, so it reports
# "invalid request accepted" for requests that were valid as sent. The
# hostile-client suite covers rejection of invalid input, case by case.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here reproduces
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="session")
def fuzz_auth(session_user):
    return session_user[1]


@pytest.fixture(scope="session")
def fuzz_client():
    """Fuzzing sends POST /register and /token dozens of times: each from a loopback
    address of its own (any 127.x.y.z is this host), so it spends no one's budget
    at the gateway's per-address rate limits. Under Docker every host client is
    one address to Kong: there it waits its turn (politely)."""
    return EachRequestFromANewAddress(fresh_loopback_addresses(random.randint(2, 254)))


def document(service):
    return schemathesis.openapi.from_url(f"{GATEWAY_URL}/openapi/{service}.json", timeout=10)


@pytest.fixture(scope="session")
def users_api(gateway):
    return document("users")


@pytest.fixture(scope="session")
def products_api(gateway):
    return document("products")


@pytest.fixture(scope="session")
def orders_api(gateway):
    return document("orders")


users_schema = schemathesis.pytest.from_fixture("users_api")
products_schema = schemathesis.pytest.from_fixture("products_api")
orders_schema = schemathesis.pytest.from_fixture("orders_api")


@users_schema.parametrize()
@FUZZ
def test_users_api(case, fuzz_auth, fuzz_client):
    case.call_and_validate(base_url=GATEWAY_URL, session=fuzz_client, headers=fuzz_auth, checks=CHECKS, timeout=10)


@products_schema.parametrize()
@FUZZ
def test_products_api(case, fuzz_auth, fuzz_client):
    case.call_and_validate(base_url=GATEWAY_URL, session=fuzz_client, headers=fuzz_auth, checks=CHECKS, timeout=10)


@orders_schema.parametrize()
@FUZZ
def test_orders_api(case, fuzz_auth, fuzz_client):
    case.call_and_validate(base_url=GATEWAY_URL, session=fuzz_client, headers=fuzz_auth, checks=CHECKS, timeout=10)
