"""The alert rules, the scrape configs and the dashboard, checked offline with
Prometheus's own promtool (Debian's prometheus package; scripts/bootstrap
installs it). A real Prometheus scraping the running stack:
tests/e2e/test_prometheus.py."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "observability" / "prometheus"
GRAFANA = ROOT / "observability" / "grafana"
sys.path.insert(0, str(ROOT / "scripts"))  # the native stack's modules, as scripts/stack runs them

import native_prometheus  # noqa: E402
import native_stack  # noqa: E402

pytestmark = pytest.mark.docker  # offline checks of deployment artefacts, like tests/docker


@pytest.fixture(scope="session")
def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: scripts/bootstrap native installs it (Debian's prometheus)")
    return path


def run(promtool, *args, cwd=PROMETHEUS):
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def alerts() -> list[dict]:
    return [
        rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for rule in group["rules"]
    ]


def test_the_compose_scrape_config_is_valid(promtool):
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_native_scrape_config_is_valid_and_scrapes_every_process(promtool, tmp_path):
    procs = native_stack.processes({}, {"products-worker": 2})
    targets = native_stack.scrape_targets(procs)
    config = tmp_path / "prometheus.yml"
    native_prometheus.write(config, targets)

    result = run(promtool, "check", "config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    scraped = {name for found in targets.values() for name, _ in found}
    expected = {proc.name for proc in procs if proc.name != native_prometheus.NAME}
    assert scraped == expected, "every process, its copies included, has metrics"
    assert [job["job_name"] for job in yaml.safe_load(config.read_text())["scrape_configs"]] == [
        job["job_name"] for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    ]


def test_the_alert_rules_are_valid(promtool):
    result = run(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_behaves_as_its_unit_tests_say(promtool):
    result = run(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_unit_tests_and_a_runbook_line():
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for rule in alerts():
        name = rule["alert"]
        assert name in tested, f"{name} has no promtool unit test"
        # Fires somewhere, and stays quiet somewhere: both sides are tested.
        cases = [case for test in tests for case in test["alert_rule_test"] if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in cases) and any(not case.get("exp_alerts") for case in cases), name
        assert re.search(rf"^\| `{name}` \|", runbook, re.M), f"docs/operations.md's runbook has no line for {name}"


def test_the_alerts_the_issue_asks_for_are_there():
    names = {rule["alert"] for rule in alerts()}
    assert names == {"DeadLettersWaiting", "OutboxStuck", "QueueWithoutConsumer", "ServerErrors", "SlowSettlement"}


def defined_metrics() -> set[str]:
    """Every shop_* name the code defines (Counter/Histogram/Gauge families)."""
    code = "\n".join(
        path.read_text() for package in ("common", "orders", "products") for path in (ROOT / package).rglob("*.py")
    )
    return set(re.findall(r'"(shop_[a-z_]+)"', code))


def used_metrics(expression: str) -> set[str]:
    names = set(re.findall(r"\b(shop_[a-z_]+)\b", expression))
    # A histogram's series carry a suffix its definition doesn't.
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


def test_alerts_and_dashboard_query_only_metrics_that_exist():
    dashboard = json.loads((GRAFANA / "dashboards" / "shop.json").read_text())
    expressions = [rule["expr"] for rule in alerts()] + [
        target["expr"] for panel in dashboard["panels"] for target in panel["targets"]
    ]
    defined = defined_metrics()
    for expression in expressions:
        assert used_metrics(expression) <= defined, expression


def test_the_dashboard_shows_what_the_issue_asks_for_from_the_provisioned_source():
    dashboard = json.loads((GRAFANA / "dashboards" / "shop.json").read_text())
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    shown = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    for metric in (
        "shop_http_requests_total",
        "shop_http_request_duration_seconds_bucket",
        'status=~"5..',
        "shop_queue_messages",
        "shop_outbox_backlog",
        "shop_order_settlement_lag_seconds_bucket",
    ):
        assert metric in shown, metric
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {source["uid"]}
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_up_observability_adds_prometheus_to_the_native_stack(monkeypatch, tmp_path):
    monkeypatch.setattr(native_stack, "OBSERVABILITY_FILE", tmp_path / "observability")
    assert native_prometheus.NAME not in [proc.name for proc in native_stack.processes({})]

    (tmp_path / "observability").touch()  # what `up --observability` leaves until `down`
    procs = native_stack.processes({})

    [prometheus] = [proc for proc in procs if proc.name == native_prometheus.NAME]
    assert prometheus.argv[0] == "prometheus"
    assert prometheus.health_url == f"{native_prometheus.url()}/-/ready"
    assert procs[-1].name == "gateway"  # still last: `up` starts it once its upstreams answer
