"""Every service is wired into every way the system runs, and every background
process too: what CONTRIBUTING's recipe for adding a service lists, checked, so
that a service added in some places and not others fails here, with the place."""

import ast
import re

import pytest
import yaml

from common.settings import LOCAL_METRICS_PORTS, SERVICES
from kong.config import load
from tests.support import ROOT

# Each service's worker and relay, as the native stack runs them (scripts/native_stack.py).
BACKGROUND = [name.rsplit("-", 1) for name in LOCAL_METRICS_PORTS]


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def kubernetes_names() -> set[str]:
    """The names of every object the Kubernetes base declares."""
    names = set()
    for path in (ROOT / "deploy" / "kubernetes" / "base").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and "metadata" in document:
                names.add(document["metadata"]["name"])
    return names


def scrape_targets() -> set[str]:
    config = yaml.safe_load((ROOT / "observability" / "prometheus" / "prometheus.yml").read_text())
    return {
        name
        for job in config["scrape_configs"]
        for discovery in job.get("dns_sd_configs", [])
        for name in discovery.get("names", [])
    }


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_wired_everywhere(service):
    assert (ROOT / service / "migrations" / "versions").is_dir(), "its migrations"
    assert service in {entry["name"] for entry in load(ROOT / "kong.yml")["services"]}, "a service in kong.yml"
    assert service in compose_services(), "a service in docker-compose.yml"
    assert re.search(rf"^COPY {service}/ {service}/$", (ROOT / "Dockerfile").read_text(), re.M), "the Dockerfile's COPY"
    assert service in kubernetes_names(), "a Deployment and Service in deploy/kubernetes/base"
    assert f"{service}-migrate" in kubernetes_names(), "its migration Job in deploy/kubernetes/base"
    assert service in scrape_targets(), "a Prometheus scrape target"


@pytest.mark.parametrize("service, role", BACKGROUND, ids=lambda part: part)
def test_each_worker_and_relay_is_wired_everywhere(service, role):
    name = f"{service}-{role}"
    assert (ROOT / service / f"{role}.py").is_file(), f"{service}/{role}.py"
    assert name in compose_services(), "a service in docker-compose.yml"
    assert name in kubernetes_names(), "a Deployment in deploy/kubernetes/base"
    assert name in scrape_targets(), "a Prometheus scrape target"
    assert [service, role] in [list(pair) for pair in _native_background()], "BACKGROUND in scripts/native_stack.py"


def _native_background():
    source = (ROOT / "scripts" / "native_stack.py").read_text()
    return ast.literal_eval(re.search(r"^BACKGROUND = (\[.*\])$", source, re.M).group(1))
