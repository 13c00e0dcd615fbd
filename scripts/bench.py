"""Load benchmark of the running stack (run it as scripts/bench; docs/benchmarks.md).

The pieces: bench_setup.py (the stack checked, users and products), bench_load.py
(wrk runs and the CPU they cost), bench_phases.py (settlement, the backlog, the
idle stack, the gateway's cost), bench_report.py (the text it prints).

What one run does, in order:

1. set-up: signs a few bench users up and logs them in (each from its own
   loopback address, so the gateway's per-address rate limits are not hit),
   creates its own products with huge stock (plus, with --scarce, one with little
   stock), and VACUUMs the services' databases (the host may run without autovacuum);
2. mixed load: many concurrent users drive GET /products/{id}, GET /products and
   POST /orders through the gateway on :8000, with wrk and scripts/bench.lua, one
   wrk process per kind of request so each has its own latency histogram;
3. gateway cost: each kind of request alone, alternately through the gateway and
   straight to its service (orders with X-User-Id instead of a token), compared by
   req/s and by the CPU the whole system spent per request;
4. settlement: reads every order the mixed load placed back from the orders API
   and reports created_at → settled_at (PENDING → CONFIRMED/REJECTED);
5. broker: stops products-worker, places orders for a few seconds, starts it
   again and times how fast that one worker works through the backlog
   (products-worker is always started again, even on failure or Ctrl-C).

Each user is a closed loop (send, wait for the answer, send again), so the rates
are the system's capacity at that concurrency, and the latencies are service
times at that concurrency (no coordinated-omission correction); --rate paces the
requests instead. The mix sets how many users do which kind of request.

wrk and this driver run on the same machine as the system: the report shows the
CPU each part took, the load generator included.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from bench_load import ROOT, Http, run_wrk, say
from bench_phases import broker_phase, gateway_cost, idle_phase, lag_stats, wait_settled
from bench_report import report
from bench_setup import (
    DEFAULT_USERS,
    check_stack,
    connections_for,
    create_users,
    direct_available,
    parse_kinds,
    seed_products,
    vacuum,
)

RESULTS = ROOT / "var" / "bench"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _what_to_run(parser)
    _where_it_runs(parser)
    return parser.parse_args(argv)


def _what_to_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--duration", type=float, default=30, help="seconds of the mixed load (0: skip it)")
    parser.add_argument(
        "-u",
        "--users",
        type=int,
        default=None,
        help=f"concurrent users (connections) in all (default {DEFAULT_USERS}; with --rate, enough for each rate)",
    )
    parser.add_argument(
        "--mix",
        default="get=60,list=10,order=30",
        help="share of the users doing GET /products/{id}, GET /products and POST /orders",
    )
    parser.add_argument(
        "--rate",
        metavar="get=N,list=N,order=N",
        help="offer these requests/s (paced) instead of a closed loop; --mix is then ignored",
    )
    parser.add_argument("--accounts", type=int, default=16, help="bench user accounts the orders are spread over")
    parser.add_argument("--products", type=int, default=50, help="products seeded with huge stock")
    parser.add_argument(
        "--scarce",
        type=int,
        default=0,
        metavar="PCT",
        help="percent of orders that go to one scarce product (409 and REJECTED expected)",
    )
    parser.add_argument("--scarce-stock", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unrecorded load first")
    parser.add_argument(
        "--cost-seconds", type=float, default=3, help="seconds of each run that prices the gateway (0: skip those runs)"
    )
    parser.add_argument(
        "--cost-rounds", type=int, default=3, help="pairs of runs (gateway and direct) per kind of request"
    )
    parser.add_argument("--cost-users", type=int, default=32, help="users in the gateway-cost runs")
    parser.add_argument(
        "--direct-mix", action="store_true", help="also run the whole mix straight to the services (-d seconds more)"
    )
    parser.add_argument(
        "--broker-seconds", type=float, default=5, help="seconds of orders queued for the products-worker run (0: skip)"
    )
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1],
        metavar="N,N,...",
        help="products-workers on the backlog, one run per count (scripts/stack up --scale): e.g. 1,2,4",
    )
    parser.add_argument(
        "--broker-alone",
        action="store_true",
        help="also time each backlog with products-relay and orders-worker stopped while the products-workers "
        "drain it: the consumer alone, as a consumer that sends nothing back is measured",
    )
    parser.add_argument("--idle", type=float, default=10, help="seconds of the idle stack's CPU first (0: skip)")
    parser.add_argument(
        "--plots", type=Path, help="also draw the run's plots (scripts/bench_plots.py) into this directory"
    )


def _where_it_runs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", default=os.environ.get("BENCH_GATEWAY", "http://127.0.0.1:8000"))
    parser.add_argument("--products-url", default=os.environ.get("BENCH_PRODUCTS_URL", "http://127.0.0.1:8102"))
    parser.add_argument("--orders-url", default=os.environ.get("BENCH_ORDERS_URL", "http://127.0.0.1:8103"))
    parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"))
    parser.add_argument(
        "--products-db", default=os.environ.get("BENCH_PRODUCTS_DB", "postgresql://products@127.0.0.1:5432/products")
    )
    parser.add_argument(
        "--databases",
        nargs="+",
        default=os.environ.get(
            "BENCH_DATABASES",
            " ".join(f"postgresql://{name}@127.0.0.1:5432/{name}" for name in ("users", "products", "orders")),
        ).split(),
        help="the services' databases, vacuumed before the run",
    )
    parser.add_argument("--no-vacuum", action="store_true", help="don't VACUUM ANALYZE the databases first")
    parser.add_argument("--json", type=Path, help="where to write the numbers (default var/bench/<run>.json)")


def main(argv=None) -> int:
    args = parse_args(argv)
    check_stack(args)
    idle = _idle(args)
    direct = direct_available(args)
    if not direct:
        print("bench: the services don't answer on their own addresses; no gateway cost", file=sys.stderr)
    run_id = datetime.now().strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:4]
    rates = parse_kinds("--rate", args.rate) if args.rate else None
    connections = connections_for(args, rates)
    args.cost_kinds = list(connections)
    users, ids, scarce, vacuumed = _set_up(args, run_id)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        files = _load_files(args, workdir, users, ids, scarce)
        phases, costs, timeline = _load(args, files, users, direct, connections, rates)
        summary = _summary(args, argv, connections, rates, phases, costs, vacuumed, idle)
        if "order" in connections and phases:
            summary["settlement"] = _settlement(args, users, direct, phases, timeline)
        if args.broker_seconds:
            summary["broker"] = _broker(args, files, users, direct)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _write(args, summary, run_id)
    errors = sum(r["errors"] for p in phases.values() for r in p.results.values())
    errors += sum(c[route]["errors"] for c in (costs or {}).values() for route in ("gateway", "direct"))
    return 0 if errors == 0 else 1


def _idle(args) -> dict | None:
    if not args.idle:
        return None
    say(f"the stack idle for {args.idle:.0f}s")
    return idle_phase(args.idle)


def _set_up(args, run_id: str):
    """The bench's users (id, token), its products (and the scarce one), and the vacuum's findings."""
    say(f"setting up: {args.accounts} users, {args.products} products")
    users = create_users(args, run_id)
    ids, scarce = seed_products(args, users[0][1], run_id)
    vacuumed = None
    if not args.no_vacuum:
        say("VACUUM ANALYZE of the services' databases")
        vacuumed = vacuum(args)
    return users, ids, scarce, vacuumed


def _load_files(args, workdir: Path, users, ids, scarce) -> dict:
    """What scripts/bench.lua reads: the product ids, the users' tokens, the scarce product, the pages."""
    (workdir / "ids").write_text("\n".join(map(str, ids)) + "\n")
    (workdir / "users").write_text("".join(f"{uid} {token}\n" for uid, token in users))
    code, page = Http(args.gateway).call("GET", "/products?per_page=20")
    return {
        "ids": workdir / "ids",
        "users": workdir / "users",
        "scarce": scarce,
        "pages": max(1, min(10, page["total"] // 20)),
    }


def _load(args, files, users, direct: bool, connections, rates):
    """The mixed load (through the gateway, and with --direct-mix straight to the
    services), then the gateway's cost; their phases, the costs, and the timeline
    (name, started, ended) of every run, for the settlement windows."""

    def targets(gateway: bool) -> dict:
        bases = {"get": args.products_url, "list": args.products_url, "order": args.orders_url}
        return {kind: (args.gateway if gateway else bases[kind], n) for kind, n in connections.items()}

    phases, timeline, costs = {}, [], None
    if args.warmup and args.duration:
        say(f"warming up for {args.warmup:.0f}s")
        run_wrk("warmup", targets(True), args.warmup, files, "bearer", args, show_progress=False, rates=rates)
    offered = f", offering {rates} requests/s" if rates else " (closed loop)"
    if args.duration:
        say(f"mixed load through the gateway: {sum(connections.values())} users {connections}{offered}")
        phases["gateway"] = run_wrk("gateway", targets(True), args.duration, files, "bearer", args, rates=rates)
        timeline.append(("gateway", phases["gateway"].started, phases["gateway"].ended))
    if direct and args.direct_mix and args.duration:
        say("the same mix straight to the services")
        phases["direct"] = run_wrk("direct", targets(False), args.duration, files, "header", args, rates=rates)
        timeline.append(("direct", phases["direct"].started, phases["direct"].ended))
    if direct and args.cost_seconds:
        say("gateway cost: each request alone, through the gateway and direct")
        cost_started = time.time()
        costs = gateway_cost(args, files, users, direct)
        timeline.append(("cost", cost_started, time.time()))
    return phases, costs, timeline


def _summary(args, argv, connections, rates, phases, costs, vacuumed, idle) -> dict:
    return {
        "when": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["scripts/bench", *(argv if argv is not None else sys.argv[1:])]).strip(),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "users": sum(connections.values()),
        "offered": rates,
        "duration": args.duration,
        "connections": connections,
        "phases": {
            name: {"results": p.results, "cpu": p.cpu, "started": p.started, "ended": p.ended, "warnings": p.warnings}
            for name, p in phases.items()
        },
        "gateway_cost": costs,
        "cost_users": args.cost_users,
        "cost_seconds": args.cost_seconds,
        "cost_rounds": args.cost_rounds,
        "settlement": {},
        "vacuum": vacuumed,
        "idle": idle,
    }


def _settlement(args, users, direct: bool, phases, timeline) -> dict:
    """Each load phase's settlement lag, over the orders created from its start to the next run's."""
    placed = sum(p.results["order"]["statuses"].get("201", 0) for p in phases.values())
    orders = wait_settled(args, users, direct, placed, 120)
    settlement = {}
    for i, (name, started, ended) in enumerate(timeline):
        if name in phases:
            window_end = timeline[i + 1][1] if i + 1 < len(timeline) else time.time() + 3600
            settlement[name] = lag_stats(orders, started, window_end, ended)
    return settlement


def _broker(args, files, users, direct: bool) -> list[dict]:
    results = []
    for workers in args.workers:
        for alone in (False, True) if args.broker_alone else (False,):
            say(
                f"{workers} products-worker(s) on a backlog{' alone' if alone else ''}: stopped while "
                f"{args.broker_seconds:.0f}s of orders queue up, then started"
            )
            results.append(broker_phase(args, files, users, direct, workers, alone))
    return results


def _write(args, summary: dict, run_id: str) -> None:
    print(report(summary))
    out = args.json or RESULTS / f"{run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"numbers: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.plots:
        import bench_plots  # scripts/ is on sys.path; matplotlib is imported only when plotting

        for path in bench_plots.draw(summary, args.plots):
            print(f"plot: {path}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
