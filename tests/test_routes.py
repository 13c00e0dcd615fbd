"""kong.yml and the services agree on the API: each documented operation has
exactly one route at the gateway, guarded by the jwt plugin exactly when its
OpenAPI document says it needs a token; each route at the gateway reaches an
endpoint its service serves publicly; and what is for operators (probes,
metrics) or for other services (products' internal lookup) has no route.

Adding an endpoint without its route (or its route without the endpoint, or
with the wrong protection) fails here, before any stack runs."""

import re

import pytest
from werkzeug.exceptions import HTTPException

from common.settings import SERVICES
from tests.kong_routes import routes
from tests.support import offline_app as service_app

# Blueprints the gateway must not route to: operators' probes and metrics, and
# what services call each other by (on an internal listener; common/http/app.py).
UNROUTED_BLUEPRINTS = {"ops", "internal"}


def operations(service: str) -> list[tuple[str, str, bool]]:
    """(method, a path, needs a token) for each operation of the service's OpenAPI document."""
    spec = service_app(service).test_client().get(f"/openapi/{service}.json").get_json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", template), bool(operation.get("security")))
        for template, item in spec["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_each_operation_has_one_route_guarded_as_documented(service):
    for method, path, needs_token in operations(service):
        matching = [route for route in routes() if route.matches(method, path)]
        assert [route.service for route in matching] == [service], f"{method} {path}: routes {matching}"
        assert matching[0].protected == needs_token, f"{method} {path}: jwt plugin {matching[0].protected}"


@pytest.mark.parametrize("route", routes(), ids=lambda route: f"{route.method} {route.name}")
def test_each_route_reaches_a_public_endpoint_of_its_service(route):
    adapter = service_app(route.service).url_map.bind("gateway")
    try:
        endpoint, _ = adapter.match(route.example, method=route.method)
    except HTTPException as exc:
        pytest.fail(f"{route.method} {route.example}: {route.service} has no such endpoint ({exc.code})")
    assert endpoint.partition(".")[0] not in UNROUTED_BLUEPRINTS | {"static"}, endpoint


@pytest.mark.parametrize("service", SERVICES)
def test_probes_metrics_and_internal_endpoints_have_no_route(service):
    unrouted = [
        (method, re.sub(r"<[^>]+>", "1", rule.rule))
        for rule in service_app(service).url_map.iter_rules()
        if rule.endpoint.partition(".")[0] in UNROUTED_BLUEPRINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    ]
    assert unrouted, "no probe found: the test looks at the wrong app"
    for method, path in unrouted:
        assert not [route for route in routes() if route.matches(method, path)], f"{method} {path} is routed"
