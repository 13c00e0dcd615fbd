"""The bench's measured phases besides the mixed load: settlement lag read back
from the orders API, products-workers on a backlog, the idle stack, and the
gateway's cost (each request alone, through Kong and straight to its service)."""

import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime

from bench_load import NOT_THE_SYSTEM, ROOT, Http, Phase, cpu_snapshot, cpu_usage, die, run_wrk, say

# -- settlement ------------------------------------------------------------------------


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def fetch_orders(args, users, direct: bool) -> list[dict]:
    """Every order of the bench users, from the orders API."""
    orders = []
    client = Http(args.orders_url if direct else args.gateway)
    for user_id, token in users:
        headers = {"X-User-Id": str(user_id)} if direct else {"Authorization": f"Bearer {token}"}
        page = 1
        while True:
            code, body = client.call("GET", f"/orders?per_page=100&page={page}", headers=headers)
            if code != 200:
                die(f"GET /orders answered {code}: {body}")
            orders.extend(body["items"])
            if page * 100 >= body["total"]:
                break
            page += 1
    client.close()
    return orders


def wait_settled(args, users, direct: bool, expected: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        orders = fetch_orders(args, users, direct)
        pending = sum(1 for order in orders if order["settled_at"] is None)
        if (pending == 0 and len(orders) >= expected) or time.monotonic() > deadline:
            return orders
        print(f"  waiting for {pending} of {len(orders)} orders to settle", file=sys.stderr, flush=True)
        time.sleep(2)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def lag_stats(orders: list[dict], start: float, end: float, load_end: float) -> dict:
    """Lags of the orders created in [start, end); load_end is when that phase's load stopped."""
    mine = [o for o in orders if start <= parse_time(o["created_at"]) < end]
    settled = [o for o in mine if o["settled_at"]]
    lags = [parse_time(o["settled_at"]) - parse_time(o["created_at"]) for o in settled]
    by_status = defaultdict(int)
    for order in mine:
        by_status[order["status"]] += 1
    last = max((parse_time(o["settled_at"]) for o in settled), default=None)
    return {
        "lags_s": sorted(lags),  # for the plots
        "orders": len(mine),
        "unsettled": len(mine) - len(settled),
        "by_status": dict(by_status),
        "p50_s": percentile(lags, 50),
        "p95_s": percentile(lags, 95),
        "p99_s": percentile(lags, 99),
        "max_s": max(lags, default=None),
        # How long after the phase ended its last order settled (a backlog that built up).
        "drained_after_end_s": (last - load_end) if last else None,
    }


# -- broker side -------------------------------------------------------------------------


def queue_depth(amqp_url: str, name: str) -> int:
    from kombu import Connection

    with Connection(amqp_url, connect_timeout=5) as connection:
        _, depth, _ = connection.default_channel.queue_declare(queue=name, passive=True)
        return depth


def stack(*argv: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "stack"), *argv], check=True, capture_output=True, text=True)


# What settles the outcomes the products-workers send back, alongside them.
DOWNSTREAM = ("products-relay", "orders-worker")


def broker_phase(args, files, users, direct: bool, workers: int, alone: bool = False) -> dict:
    """`workers` products-workers on a backlog: stop them, queue orders, start them, time the drain.

    The drain is timed from the first event the workers claim to the last (the
    products database's processed_events, polled 20 times a second), so their
    start-up doesn't count. `alone`: DOWNSTREAM is stopped while they drain, so
    the workers don't share the cores with the settling of their outcomes (which
    then follows, once DOWNSTREAM is started again).
    """
    import psycopg2

    result = {"workers": workers, "alone": alone}
    products_db = psycopg2.connect(args.products_db, connect_timeout=3)
    products_db.autocommit = True
    stack("up", "--scale", f"products-worker={workers}")
    depth_before = queue_depth(args.amqp_url, BACKLOG_QUEUE)
    stack("stop", "products-worker")  # every copy
    try:
        target = {"order": (args.orders_url if direct else args.gateway, 8)}
        placing = run_wrk("broker", target, args.broker_seconds, files, "header" if direct else "bearer", args)
        result["orders_queued"] = placing.results["order"]["statuses"].get("201", 0)
        result["placing_rps"] = placing.results["order"]["rps"]
        result["queue_depth"] = _queued(args, depth_before + result["orders_queued"])
        say(f"  {result['queue_depth']} OrderCreated events queued; starting {workers} products-worker(s)")
        started_wall = time.time()
        if alone:
            stack("stop", *DOWNSTREAM)
        result.update(_drain(products_db, result["queue_depth"]))
    finally:
        # Whatever happened: products-worker runs again, one copy, and DOWNSTREAM too.
        try:
            stack("start", "products-worker", *DOWNSTREAM)
            stack("up", "--scale", "products-worker=1")
        except subprocess.CalledProcessError as exc:
            print(f"bench: could not restart products-worker: {exc.stdout}{exc.stderr}", file=sys.stderr)
        products_db.close()
    # End to end: every queued order settled (through products-relay and orders-worker too).
    orders = wait_settled(args, users, direct, 0, 120)
    settled = [
        parse_time(o["settled_at"])
        for o in orders
        if o["settled_at"] and placing.started <= parse_time(o["created_at"]) < placing.ended
    ]
    if settled:
        result["all_settled_after_start_s"] = max(settled) - started_wall
    return result


BACKLOG_QUEUE = "products.order-created"


def _queued(args, expected: int) -> int:
    """The backlog's depth, once orders-relay has published every order placed (the queue stops growing)."""
    deadline, last, still = time.monotonic() + 60, -1, 0
    while time.monotonic() < deadline:
        depth = queue_depth(args.amqp_url, BACKLOG_QUEUE)
        still = still + 1 if depth == last else 0
        if depth >= expected and still >= 2:
            break
        last = depth
        time.sleep(0.5)
    return queue_depth(args.amqp_url, BACKLOG_QUEUE)


def _drain(products_db, backlog: int) -> dict:
    """Start the products-workers and time them through `backlog` events, from their first claim."""

    # Only the claims made since the workers were started, by processed_at's index:
    # counting the whole table 20 times a second cost PostgreSQL up to a core once
    # earlier runs had left a few hundred thousand claims (they are kept a week),
    # and the workers drained slower the more the bench had been run.
    with products_db.cursor() as cursor:
        cursor.execute("SELECT now()")
        since = cursor.fetchone()[0]

    def claimed() -> int:
        with products_db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM processed_events WHERE processed_at >= %s", (since,))
            return cursor.fetchone()[0]

    result = {}
    before = claimed()
    started = time.monotonic()
    stack("start", "products-worker")
    first = None
    while time.monotonic() - started < 300:
        done, now = claimed() - before, time.monotonic()
        if done and first is None:
            first = (now, done, cpu_snapshot())  # the CPU from here on: the workers' start-up doesn't count
        if done >= backlog:
            result["events"] = done
            result["span_s"] = now - first[0]
            result["events_per_s"] = (done - first[1]) / max(result["span_s"], 1e-6)
            # What each part of the system spent per event meanwhile: the workers,
            # PostgreSQL and RabbitMQ, and products-relay and orders-worker settling
            # the outcomes as they come.
            cpu = cpu_usage(first[2], cpu_snapshot())
            result["cpu_ms_per_event"] = {
                group: cores * result["span_s"] * 1000 / max(done - first[1], 1)
                for group, cores in cpu["cores"].items()
                if group not in NOT_THE_SYSTEM and cores >= 0.005
            }
            break
        time.sleep(0.05)
    result["drain_incl_startup_s"] = time.monotonic() - started
    return result


def idle_phase(seconds: float) -> dict:
    """What the stack costs doing nothing: CPU of its processes over `seconds` without load."""
    before = cpu_snapshot()
    time.sleep(seconds)
    cpu = cpu_usage(before, cpu_snapshot())
    stack_cores = sum(c for group, c in cpu["cores"].items() if group not in NOT_THE_SYSTEM)
    return {"seconds": seconds, "cores": cpu["cores"], "stack_cores": stack_cores}


# -- gateway cost ---------------------------------------------------------------------------


def cpu_ms_per_request(phase: Phase, kind: str) -> dict[str, float]:
    """CPU milliseconds each part of the system spent per answered request."""
    seconds = phase.cpu["seconds"]
    answered = phase.results[kind]["requests"]
    per = {
        group: cores * seconds * 1000 / max(answered, 1)
        for group, cores in phase.cpu["cores"].items()
        if group not in NOT_THE_SYSTEM
    }
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def gateway_cost(args, files, users, direct: bool) -> dict:
    """Each kind of request alone, closed loop, through the gateway and straight to its
    service, alternating (gateway, direct, direct, gateway, …: a drift in the machine's
    speed cancels out, and each run's connections land anew on the Gunicorn workers,
    which is luck that differs from run to run); the cost is 1 - gateway req/s ÷
    direct req/s over all runs. The CPU each part of the system spends per request is
    counted too; for orders until they settled."""
    bases = {"get": args.products_url, "list": args.products_url, "order": args.orders_url}
    costs = {}
    for kind in args.cost_kinds:
        runs = {"gateway": [], "direct": []}
        drain = (lambda: wait_newest_settled(args, users, direct)) if kind == "order" else None
        order = [("gateway", "direct") if i % 2 == 0 else ("direct", "gateway") for i in range(args.cost_rounds)]
        for route in (route for pair in order for route in pair):
            target = {kind: (args.gateway if route == "gateway" else bases[kind], args.cost_users)}
            phase = run_wrk(
                f"{kind}/{route[:2]}",
                target,
                args.cost_seconds,
                files,
                "bearer" if route == "gateway" else "header",
                args,
                drain=drain,
            )
            runs[route].append(phase)
        numbers = {}
        for route, phases in runs.items():
            results = [p.results[kind] for p in phases]
            cpu = [cpu_ms_per_request(p, kind) for p in phases]
            numbers[route] = {
                "rps": sum(r["requests"] for r in results) / sum(r["duration_us"] / 1e6 for r in results),
                "rps_runs": [round(r["rps"]) for r in results],
                "p50_ms": sum(r["latency_us"]["p50"] for r in results) / len(results) / 1000,
                "p99_ms": max(r["latency_us"]["p99"] for r in results) / 1000,
                "errors": sum(r["errors"] for r in results),
                "cpu_ms": {group: sum(c.get(group, 0) for c in cpu) / len(cpu) for group in cpu[0]},
                "foreign_cores": max(p.cpu["cores"]["other"] for p in phases),
                "restarted": any("restarted" in w for p in phases for w in p.warnings),
            }
        numbers["cost"] = 1 - numbers["gateway"]["rps"] / numbers["direct"]["rps"]
        # The same cost from CPU per request: on a machine whose cores are the limit,
        # capacity goes as 1 / CPU per request, and this is much less noisy than req/s.
        cpu_gw, cpu_direct = sum(numbers["gateway"]["cpu_ms"].values()), sum(numbers["direct"]["cpu_ms"].values())
        numbers["cost_by_cpu"] = 1 - cpu_direct / cpu_gw if cpu_gw else None
        costs[kind] = numbers
    return costs


def wait_newest_settled(args, users, direct: bool, timeout: float = 60) -> None:
    """Until each bench user's newest order has settled (the backlog is worked off)."""
    client = Http(args.orders_url if direct else args.gateway)
    deadline = time.monotonic() + timeout
    try:
        for user_id, token in users:
            headers = {"X-User-Id": str(user_id)} if direct else {"Authorization": f"Bearer {token}"}
            while time.monotonic() < deadline:
                code, body = client.call("GET", "/orders?per_page=1", headers=headers)
                if code != 200 or not body["items"] or body["items"][0]["settled_at"]:
                    break
                time.sleep(0.1)
    finally:
        client.close()
