"""Plots of a benchmark run: what the gateway saw, second by second, and how long
orders took to settle.

    scripts/bench --plots DIR                            # drawn at the end of a run
    .venv/bin/python scripts/bench_plots.py RUN.json DIR   # again, from a run's numbers

throughput.png   requests a second over the mixed load, per endpoint, from Kong's
                 access log (var/log/gateway.log); Kong's default log format has
                 no timings, so latencies are the load generator's (the report)
settlement.png   the settlement lag of every order the mixed load placed (created_at
                 to settled_at), as a distribution
"""

import json
import re
import sys
import textwrap
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_LOG = ROOT / "var" / "log" / "gateway.log"
# The endpoints the mixed load calls, by the request line Kong logs.
ROUTES = {
    "GET /products/{id}": re.compile(r"GET /products/\d+ "),
    "GET /products": re.compile(r"GET /products[ ?]"),
    "POST /orders": re.compile(r"POST /orders "),
}
# Kong's kong_log_format (nginx_kong.lua): 127.0.0.1 - - [07/Dec/2026:10:28:40 +0000] "GET /products/62 HTTP/1.1" ...
LINE = re.compile(r'\[(?P<at>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "(?P<request>[^"]*)"')


def gateway_seconds(started: float, ended: float) -> dict[str, dict[int, int]]:
    """endpoint -> second of the run -> the requests Kong logged then."""
    seconds: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    with GATEWAY_LOG.open(errors="replace") as log:
        for line in log:
            match = LINE.search(line)
            if not match:
                continue
            at = datetime.strptime(match["at"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
            endpoint = next((name for name, pattern in ROUTES.items() if pattern.match(match["request"])), None)
            if endpoint and started <= at < ended:
                seconds[endpoint][int(at - started)] += 1
    return seconds


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def draw(summary: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    drawn = []
    mixed = summary["phases"].get("gateway")
    if mixed:
        seconds = gateway_seconds(mixed["started"], mixed["ended"])
        # A long command line would run off the figure: wrap it.
        title = "\n".join(textwrap.wrap(f"{summary['command']}  ({summary['when']})", 90))
        figure, axes = plt.subplots(figsize=(9, 4))
        for route, by_second in sorted(seconds.items()):
            xs = sorted(by_second)
            axes.plot(xs, [by_second[x] for x in xs], label=route)
        axes.set(xlabel="second of the mixed load", ylabel="requests/s", title=title)
        axes.legend()
        drawn.append(_save(figure, out / "throughput.png"))

    lags = [lag * 1000 for lag in (summary.get("settlement", {}).get("gateway") or {}).get("lags_s", [])]
    if lags:
        figure, axes = plt.subplots(figsize=(9, 4))
        axes.hist(lags, bins=50)
        for q, style in ((0.5, "-"), (0.99, "--")):
            axes.axvline(
                quantile(lags, q), color="black", linestyle=style, label=f"p{int(q * 100)} {quantile(lags, q):.0f} ms"
            )
        axes.set(
            xlabel="settlement lag, ms (created_at → settled_at)",
            ylabel="orders",
            title=f"{len(lags)} orders of the mixed load",
        )
        axes.legend()
        drawn.append(_save(figure, out / "settlement.png"))
    return drawn


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: scripts/bench_plots.py RUN.json DIR")
    for path in draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])):
        print(path)
