"""Kong's Admin and Status APIs, as the README's inspection walkthrough uses them,
in whichever way the system runs: the Admin API only for an operator who asks on
purpose (loopback: natively the host's, under compose the Kong container's own),
the read-only Status API on the host's loopback port 8100."""

import json

import pytest
import requests
import yaml

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

STATUS_URL = "http://127.0.0.1:8100"


def admin_json(stack, path):
    answer = stack.kong_admin(path)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def test_the_admin_api_reports_kong_3_9_3_db_less(stack):
    node = admin_json(stack, "/")

    assert node["version"] == "3.9.3"
    assert node["configuration"]["database"] == "off"


def test_the_admin_api_listens_on_loopback_only(stack):
    configuration = admin_json(stack, "/")["configuration"]

    assert configuration["admin_listen"] == ["127.0.0.1:8001"]
    assert configuration["admin_gui_listen"] == ["off"]
    assert configuration["anonymous_reports"] is False


def test_kong_serves_the_routes_of_kong_yml(stack):
    served = {route["name"] for route in admin_json(stack, "/routes")["data"]}

    declared = {
        route["name"]
        for service in yaml.safe_load((ROOT / "kong.yml").read_text())["services"]
        for route in service["routes"]
    }
    assert served == declared


def test_the_services_have_the_timeouts_of_kong_yml(stack):
    served = {service["name"]: service for service in admin_json(stack, "/services")["data"]}

    declared = yaml.safe_load((ROOT / "kong.yml").read_text())["services"]
    for service in declared:
        for field in ("connect_timeout", "read_timeout", "write_timeout", "retries"):
            assert served[service["name"]][field] == service[field], (service["name"], field)


def test_kongs_status_api_answers_on_host_loopback():
    status = requests.get(f"{STATUS_URL}/status", timeout=5)
    ready = requests.get(f"{STATUS_URL}/status/ready", timeout=5)
    metrics = requests.get(f"{STATUS_URL}/metrics", timeout=5)

    assert status.status_code == 200 and "server" in status.json()
    assert ready.status_code == 200
    assert "kong_" in metrics.text


def test_the_admin_tool_refuses_anything_but_a_path(stack):
    answer = stack.kong_admin("routes")

    assert answer.stdout == ""
    assert "usage: python -m kong.admin /PATH" in answer.stderr
