"""The native stack's Prometheus: Debian's `prometheus`, scraping every process
of the running stack on its loopback address (scripts/stack up --observability).

It loads the same alert rules as the compose profile's
(observability/prometheus/alerts.yml) and uses the same job names, so queries,
alerts and the Grafana dashboard read alike on both. Only the targets differ:
here every process has a port of its own on 127.0.0.1.
"""

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "observability" / "prometheus" / "alerts.yml"
NAME = "prometheus"
SCRAPE_INTERVAL = "5s"  # a local stack: quick to show what a test or a benchmark just did


def bind() -> str:
    """Where it serves: 127.0.0.1:9390 (not 9090, where a system Prometheus may run), or PROMETHEUS_BIND."""
    return os.environ.get("PROMETHEUS_BIND", "127.0.0.1:9390")


def url() -> str:
    return f"http://{bind()}"


def config(targets: dict[str, list[tuple[str, str]]], rules: Path = RULES) -> dict:
    """targets: job -> [(process name, "host:port")], e.g.
    {"services": [("users", "127.0.0.1:8101")], "background": [...], "gateway": [...]}"""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [address], "labels": {"process": name}} for name, address in found],
            }
            for job, found in targets.items()
        ],
    }


def write(path: Path, targets: dict[str, list[tuple[str, str]]]) -> bool:
    """Write the config; True if it changed (a running Prometheus must read it again)."""
    text = yaml.safe_dump(config(targets), sort_keys=False)
    before = path.read_text() if path.exists() else ""
    path.write_text(text)
    return text != before


def argv(config_path: Path, data_dir: Path, listen: str | None = None) -> list[str]:
    return [
        NAME,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={listen or bind()}",
        # A development copy: a day of history is plenty.
        "--storage.tsdb.retention.time=1d",
    ]
