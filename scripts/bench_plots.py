"""Plots of a benchmark run: what the gateway saw, second by second, and how long
orders took to settle.

    scripts/bench --plots DIR                            # drawn at the end of a run
    .venv/bin/python scripts/bench_plots.py RUN.json DIR   # again, from a run's numbers

throughput.png   requests a second over the mixed load, per endpoint
latency.png      p50 and p99 a second, per endpoint: the gateway's own timing of
                 each request (HAProxy's %Ta, from var/log/gateway.log)
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
ROUTES = {"products-read": "GET /products/{id}", "products-list": "GET /products", "orders-collection": "POST /orders"}
# 127.0.0.1:50474 [01/Dec/2026:22:28:03.357] gateway products/products 0/0/0/2/3 200 245 ---- ... route=products-read
LINE = re.compile(
    r"\[(?P<at>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] \S+ \S+ (?P<timers>\S+) \d{3} .* route=(?P<route>\S+)"
)


def gateway_seconds(started: float, ended: float) -> dict[str, dict[int, list[float]]]:
    """route label -> second of the run -> the total times (ms) of the requests received then."""
    seconds: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with GATEWAY_LOG.open(errors="replace") as log:
        for line in log:
            match = LINE.search(line)
            if not match or match["route"] not in ROUTES:
                continue
            # HAProxy writes local time, as does a naive datetime's timestamp().
            at = datetime.strptime(match["at"], "%d/%b/%Y:%H:%M:%S.%f").timestamp()
            if started <= at < ended:
                total = float(match["timers"].rsplit("/", 1)[1])
                seconds[ROUTES[match["route"]]][int(at - started)].append(total)
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
            axes.plot(xs, [len(by_second[x]) for x in xs], label=route)
        axes.set(xlabel="second of the mixed load", ylabel="requests/s", title=title)
        axes.legend()
        drawn.append(_save(figure, out / "throughput.png"))

        figure, axes = plt.subplots(figsize=(9, 4))
        for route, by_second in sorted(seconds.items()):
            xs = sorted(by_second)
            line = axes.plot(xs, [quantile(by_second[x], 0.5) for x in xs], label=f"{route} p50")[0]
            axes.plot(
                xs, [quantile(by_second[x], 0.99) for x in xs], "--", color=line.get_color(), label=f"{route} p99"
            )
        axes.set(xlabel="second of the mixed load", ylabel="ms (at the gateway)", yscale="log", title=title)
        axes.legend(fontsize="small")
        drawn.append(_save(figure, out / "latency.png"))

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
