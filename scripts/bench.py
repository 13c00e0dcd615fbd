"""Load benchmark of the running stack (run it as scripts/bench; docs/benchmarks.md).

What one run does, in order:

1. set-up: registers a few bench users and logs them in (each /token call from
   its own loopback address, so the gateway's per-address rate limit is not hit),
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
import http.client
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import native_supervisor  # scripts/ is on sys.path: this file runs as a script

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "bench.lua"
RESULTS = ROOT / "var" / "bench"

KINDS = ("get", "list", "order")
LABELS = {"get": "GET /products/{id}", "list": "GET /products", "order": "POST /orders"}
MAX_STOCK = 2**31 - 1
DEFAULT_USERS = 48
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- small HTTP client (set-up and read-back only; the load itself is wrk's) ----------


class Http:
    def __init__(self, base: str, source: str | None = None, timeout: float = 10):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port or 80
        self.source, self.timeout = source, timeout
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, object]:
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host,
                    self.port,
                    timeout=self.timeout,
                    source_address=(self.source, 0) if self.source else None,
                )
            try:
                self.conn.request(method, path, data, headers)
                response = self.conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, raw.decode(errors="replace")
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()


def die(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(1)


# -- CPU accounting: who used the two cores during a phase -------------------------


def _stack_groups() -> dict[int, str]:
    """Process group id → stack process name (supervisord starts each native
    process in a process group of its own); {} when the native stack isn't up."""
    if not native_supervisor.running():
        return {}
    # A copy (products-worker.2, from `scripts/stack up --scale`) counts for its process.
    return {info["pid"]: name.split(".")[0] for name, info in native_supervisor.states().items() if info["pid"]}


def cpu_snapshot() -> tuple[float, dict[int, tuple[str, int]], tuple[int, int]]:
    groups = _stack_groups()
    me = os.getpid()
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pgid, ticks = int(fields[2]), int(fields[11]) + int(fields[12])
        if pgid in groups:
            group = groups[pgid]
        elif comm == "postgres":
            group = "postgresql"
            try:  # "postgres: 15/main: orders orders 127.0.0.1(5432) idle": note the database
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split()
                if len(title) >= 4 and title[0] == "postgres:":
                    group = f"postgresql:{title[3]}"
            except OSError:
                pass
        elif comm in ("beam.smp", "erl_child_setup", "epmd", "inet_gethost") or comm.endswith("_scheduler"):
            group = "rabbitmq"
        elif comm == "wrk":
            group = "wrk (load generator)"
        elif pid == me:
            group = "bench driver"
        else:
            group = f"other:{comm}"
        procs[pid] = (group, ticks)
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = list(map(int, cpu))
    idle = values[3] + values[4]
    return time.monotonic(), procs, (sum(values), idle)


def cpu_usage(before, after) -> dict:
    """Cores used per group between two snapshots, and the machine's busy share."""
    t0, procs0, (total0, idle0) = before
    t1, procs1, (total1, idle1) = after
    wall = t1 - t0
    used = defaultdict(float)
    for pid, (group, ticks) in procs1.items():
        start = procs0.get(pid, (group, 0))[1]  # a process started meanwhile counts from 0
        used[group] += max(ticks - start, 0) / CLK_TCK / wall
    busy = 1 - (idle1 - idle0) / max(total1 - total0, 1)
    other = {group.removeprefix("other:"): cores for group, cores in used.items() if group.startswith("other:")}
    databases = {group.removeprefix("postgresql:"): c for group, c in used.items() if group.startswith("postgresql:")}
    cores = {group: c for group, c in used.items() if not group.startswith(("other:", "postgresql"))}
    cores["postgresql"] = used.get("postgresql", 0) + sum(databases.values())
    cores["other"] = sum(other.values())
    return {
        "cores": dict(sorted(cores.items(), key=lambda kv: -kv[1])),
        "other": dict(sorted(((k, v) for k, v in other.items() if v >= 0.005), key=lambda kv: -kv[1])),
        "postgresql_by_database": dict(sorted(databases.items(), key=lambda kv: -kv[1])),
        "machine_busy": busy,
        "cpus": os.cpu_count(),
    }


# -- running wrk ---------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    started: float = 0.0  # wall clock (time.time()) at the start
    ended: float = 0.0
    results: dict = field(default_factory=dict)  # kind → wrk's numbers
    cpu: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def run_wrk(
    name: str,
    targets: dict[str, tuple[str, int]],
    duration: float,
    files: dict,
    auth: str,
    args,
    show_progress: bool = True,
    rates: dict[str, float] | None = None,
    drain=None,
) -> Phase:
    """Run one wrk process per kind at once; targets: kind → (base URL, connections);
    rates: kind → requests a second to offer (paced), or none for a closed loop;
    drain: called after the load, before the CPU count ends (to include async work)."""
    phase = Phase(name)
    progress_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name.replace('/', '-')}-"))
    procs = {}
    phase.started = time.time()
    pids_before = _stack_groups()
    before = cpu_snapshot()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        for kind, (base, connections) in targets.items():
            script_args = [
                f"kind={kind}",
                f"ids={files['ids']}",
                f"users={files['users']}",
                f"auth={auth}",
                f"pages={files['pages']}",
                f"progress={progress_dir / kind}",
            ]
            if files.get("scarce"):
                script_args += [f"scarce={files['scarce']}", f"scarce_pct={args.scarce}"]
            argv = [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration:.0f}s",
                "--timeout",
                "10s",
                "-s",
                str(LUA),
                base,
                "--",
                *script_args,
            ]
            env = dict(os.environ)
            env.pop("BENCH_RATE", None)
            if rates and rates.get(kind):
                env["BENCH_RATE"] = str(rates[kind])
            procs[kind] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        _show_progress(name, procs, progress_dir, duration, show_progress)
        outputs = {kind: proc.communicate() for kind, proc in procs.items()}
        phase.ended = time.time()
        if drain is not None:
            drain()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(progress_dir, ignore_errors=True)
    after = cpu_snapshot()
    phase.cpu = cpu_usage(before, after)
    # wrk has exited by now, so /proc no longer shows it: its CPU is in our children's rusage.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cores = (children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime) / (
        after[0] - before[0]
    )
    phase.cpu["cores"]["wrk (load generator)"] = wrk_cores
    phase.cpu["cores"] = dict(sorted(phase.cpu["cores"].items(), key=lambda kv: -kv[1]))
    phase.cpu["seconds"] = after[0] - before[0]
    if _stack_groups() != pids_before:
        phase.warnings.append("stack processes were restarted during this phase: its numbers are not valid, run again")
    if pids_before and phase.cpu["cores"]["other"] > 0.1:  # (no pid files: not the native stack)
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(phase.cpu["other"].items())[:4])
        phase.warnings.append(
            f"processes outside this stack used {phase.cpu['cores']['other']:.2f} cores ({top}): "
            "the numbers are disturbed"
        )
    for kind, (out, err) in outputs.items():
        line = next((text for text in out.splitlines() if text.startswith("BENCH-JSON ")), None)
        if procs[kind].returncode != 0 or line is None:
            die(f"wrk ({kind}) failed:\n{out}\n{err}")
        result = json.loads(line.removeprefix("BENCH-JSON "))
        seconds = result["duration_us"] / 1e6
        result["rps"] = result["requests"] / seconds
        result["connections"] = targets[kind][1]
        result["offered_rps"] = (rates or {}).get(kind)
        sockets = sum(result["socket_errors"].values())
        result["errors"] = result["unexpected"] + sockets
        phase.results[kind] = result
    return phase


def _show_progress(name, procs, progress_dir: Path, duration: float, enabled: bool) -> None:
    tty = sys.stderr.isatty()
    start = time.monotonic()
    last = {kind: 0 for kind in procs}
    last_t = start
    last_print = 0.0
    while any(proc.poll() is None for proc in procs.values()):
        time.sleep(0.05)
        now = time.monotonic()
        if now - last_t < 1 and any(proc.poll() is None for proc in procs.values()):
            continue
        counts, errors = {}, 0
        for kind in procs:
            n = 0
            for path in progress_dir.glob(f"{kind}-*"):
                try:
                    done, bad = map(int, path.read_text().split())
                except (OSError, ValueError):
                    continue
                n += done
                errors += bad
            counts[kind] = n
        rates = "  ".join(f"{kind} {(counts[kind] - last[kind]) / (now - last_t):6.0f}/s" for kind in procs)
        line = f"  [{name:<7} {min(now - start, duration):4.0f}/{duration:.0f}s] {rates}  errors {errors}"
        last, last_t = counts, now
        if not enabled:
            continue
        if tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif now - last_print >= 5:
            print(line, file=sys.stderr, flush=True)
            last_print = now
    if enabled and tty:
        print(file=sys.stderr)


# -- set-up ----------------------------------------------------------------------------


def check_stack(args) -> None:
    status = subprocess.run([str(ROOT / "scripts" / "stack"), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        die("the stack is not up (or not healthy); start it with scripts/stack up\n" + status.stdout + status.stderr)
    if shutil.which("wrk") is None:
        die("wrk is not installed: run scripts/bootstrap (it installs wrk from Debian)")
    try:
        code, _ = Http(args.gateway, timeout=3).call("GET", "/products?per_page=1")
    except OSError as exc:
        die(f"the gateway at {args.gateway} does not answer ({exc}); start the stack with scripts/stack up")
    if code != 200:
        die(f"the gateway at {args.gateway} answers GET /products with {code}")


def vacuum(args) -> dict:
    """VACUUM ANALYZE each service's database; returns the outbox's dead rows found first.

    This host's PostgreSQL may run with autovacuum off (the sandboxes do): then the
    outbox's partial index keeps an entry for every row ever published, each relay poll
    walks them all, and every run would be slower than the one before."""
    import psycopg2

    found = {"autovacuum": None, "outbox_dead_rows": {}}
    for url in args.databases:
        try:
            connection = psycopg2.connect(url, connect_timeout=3)
        except psycopg2.Error as exc:
            print(f"  (can't vacuum {urlsplit(url).path.lstrip('/')}: {exc})", file=sys.stderr)
            continue
        connection.autocommit = True
        name = urlsplit(url).path.lstrip("/")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW autovacuum")
                found["autovacuum"] = cursor.fetchone()[0]
                cursor.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'outbox'")
                row = cursor.fetchone()
                if row:
                    found["outbox_dead_rows"][name] = row[0]
                cursor.execute("VACUUM ANALYZE")
        except psycopg2.Error as exc:
            print(f"  (vacuuming {name} failed: {exc})", file=sys.stderr)
        finally:
            connection.close()
    return found


def direct_available(args) -> bool:
    for base in (args.products_url, args.orders_url):
        try:
            Http(base, timeout=3).call("GET", "/healthz")
        except OSError:
            return False
    return True


def create_users(args, run_id: str) -> list[tuple[int, str]]:
    """(user id, token) for --accounts new users, signed up and logged in through the
    gateway, each from its own loopback address (127.0.0.2, .3, …): the gateway limits
    /register and /token per client address."""
    password = "bench-" + uuid.uuid4().hex
    loopback = urlsplit(args.gateway).hostname in ("127.0.0.1", "localhost")
    users = []
    for i in range(args.accounts):
        email = f"bench-{run_id}-{i}@bench.example.com"
        client = Http(args.gateway, source=f"127.0.0.{2 + i % 250}" if loopback else None)
        code, body = client.call("POST", "/register", {"email": email, "password": password})
        if code != 201:
            die(f"POST /register answered {code}: {body}")
        for _attempt in range(30):
            code, token = client.call("POST", "/token", {"email": email, "password": password})
            if code != 429:
                break
            time.sleep(2)  # rate-limited (another run from the same address a moment ago)
        client.close()
        if code != 200:
            die(f"POST /token answered {code}: {token}")
        users.append((body["id"], token["access_token"]))
    return users


def seed_products(args, token: str, run_id: str) -> tuple[list[int], int | None]:
    gateway = Http(args.gateway)
    auth = {"Authorization": f"Bearer {token}"}
    ids = []
    for i in range(args.products):
        code, body = gateway.call(
            "POST", "/products", {"name": f"bench {run_id} #{i}", "price": 9.99, "quantity": MAX_STOCK}, auth
        )
        if code != 201:
            die(f"POST /products answered {code}: {body}")
        ids.append(body["id"])
    scarce = None
    if args.scarce:
        code, body = gateway.call(
            "POST", "/products", {"name": f"bench {run_id} scarce", "price": 9.99, "quantity": args.scarce_stock}, auth
        )
        if code != 201:
            die(f"POST /products answered {code}: {body}")
        scarce = body["id"]
    gateway.close()
    return ids, scarce


def parse_kinds(option: str, value: str) -> dict[str, int]:
    shares = {}
    for part in value.split(","):
        kind, _, number = part.partition("=")
        kind = kind.strip()
        if kind not in KINDS or not number.strip().isdigit():
            die(f"{option} wants get=N,list=N,order=N (got {value!r})")
        shares[kind] = int(number)
    if not any(shares.values()):
        die(f"{option}: all numbers are 0")
    return {kind: n for kind, n in shares.items() if n > 0}


def connections_for(args, rates: dict[str, int] | None) -> dict[str, int]:
    """Users (connections) per kind of request: --users split by --mix; with --rate,
    enough users to carry each rate at 100 ms a request (at least 2), unless
    --users is given too, which is then split by the rates."""
    if rates and args.users is None:
        return {kind: max(2, -(-rate // 10)) for kind, rate in rates.items()}
    shares = rates or parse_kinds("--mix", args.mix)
    users = args.users or DEFAULT_USERS
    total = sum(shares.values())
    return {kind: max(1, round(users * share / total)) for kind, share in shares.items()}


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


def broker_phase(args, files, users, direct: bool, workers: int) -> dict:
    """`workers` products-workers on a backlog: stop them, queue orders, start them, time the drain.

    The drain is timed from the first event the workers claim to the last (the
    products database's processed_events, polled 20 times a second), so their
    start-up doesn't count.
    """
    import psycopg2

    queue = "products.order-created"
    result = {"workers": workers}
    products_db = psycopg2.connect(args.products_db, connect_timeout=3)
    products_db.autocommit = True

    def claimed() -> int:
        with products_db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM processed_events")
            return cursor.fetchone()[0]

    stack("up", "--scale", f"products-worker={workers}")
    depth_before = queue_depth(args.amqp_url, queue)
    stack("stop", "products-worker")  # every copy
    try:
        target = {"order": (args.orders_url if direct else args.gateway, 8)}
        placing = run_wrk("broker", target, args.broker_seconds, files, "header" if direct else "bearer", args)
        placed = placing.results["order"]["statuses"].get("201", 0)
        result["orders_queued"] = placed
        result["placing_rps"] = placing.results["order"]["rps"]
        # Wait until orders-relay has published them all (the queue stops growing).
        deadline, last, still = time.monotonic() + 60, -1, 0
        while time.monotonic() < deadline:
            depth = queue_depth(args.amqp_url, queue)
            still = still + 1 if depth == last else 0
            if depth - depth_before >= placed and still >= 2:
                break
            last = depth
            time.sleep(0.5)
        backlog = queue_depth(args.amqp_url, queue)
        result["queue_depth"] = backlog
        print(
            f"  {backlog} OrderCreated events queued; starting {workers} products-worker(s)",
            file=sys.stderr,
            flush=True,
        )
        before = claimed()
        started, started_wall = time.monotonic(), time.time()
        stack("start", "products-worker")
        first = None
        while time.monotonic() - started < 300:
            done, now = claimed() - before, time.monotonic()
            if done and first is None:
                first = (now, done)
            if done >= backlog:
                result["events"] = done
                result["span_s"] = now - first[0]
                result["events_per_s"] = (done - first[1]) / max(result["span_s"], 1e-6)
                break
            time.sleep(0.05)
        result["drain_incl_startup_s"] = time.monotonic() - started
    finally:
        # Whatever happened: products-worker runs again, one copy.
        try:
            stack("start", "products-worker")
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


def idle_phase(seconds: float) -> dict:
    """What the stack costs doing nothing: CPU of its processes over `seconds` without load."""
    before = cpu_snapshot()
    time.sleep(seconds)
    cpu = cpu_usage(before, cpu_snapshot())
    stack_cores = sum(c for group, c in cpu["cores"].items() if group not in NOT_THE_SYSTEM)
    return {"seconds": seconds, "cores": cpu["cores"], "stack_cores": stack_cores}


# -- gateway cost ---------------------------------------------------------------------------


NOT_THE_SYSTEM = ("wrk (load generator)", "bench driver", "other")


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


# -- report --------------------------------------------------------------------------------


def fmt_ms(us) -> str:
    return f"{us / 1000:.1f}" if us is not None else "–"


def fmt_s(seconds) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds is not None else "–"


def report(summary: dict) -> str:
    lines = []
    add = lines.append
    add("")
    add(f"shop benchmark  {summary['when']}  ({summary['command']})")
    mode = f"offered requests/s {summary['offered']}" if summary.get("offered") else "closed loop"
    add(f"{summary['users']} concurrent users {summary['connections']}, {summary['duration']:.0f}s, {mode}")
    if summary.get("vacuum"):
        v = summary["vacuum"]
        add(
            f"databases vacuumed first (autovacuum is {v['autovacuum']} here; dead outbox rows found: "
            f"{', '.join(f'{k} {n}' for k, n in v['outbox_dead_rows'].items()) or 'none'})"
        )
    add("")
    add(f"{'':<20}{'via':<9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}  statuses")
    for name, phase in summary["phases"].items():
        total = 0.0
        for kind in KINDS:
            r = phase["results"].get(kind)
            if not r:
                continue
            total += r["rps"]
            lat = r["latency_us"]
            statuses = " ".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items()))
            add(
                f"{LABELS[kind]:<20}{name:<9}{r['rps']:>8.0f}{fmt_ms(lat['p50']):>9}{fmt_ms(lat['p95']):>9}"
                f"{fmt_ms(lat['p99']):>9}{fmt_ms(lat['max']):>9}{r['errors']:>8}  {statuses}"
                + "".join(f" {k}-errors:{v}" for k, v in r["socket_errors"].items() if v)
            )
        add(f"{'all':<20}{name:<9}{total:>8.0f}")
    costs = summary.get("gateway_cost")
    if costs:
        add("")
        add(
            f"gateway cost: each request alone, {summary['cost_users']} users, closed loop, "
            f"{summary['cost_rounds']} x ({summary['cost_seconds']:.0f}s through the gateway + "
            f"{summary['cost_seconds']:.0f}s direct), alternating:"
        )
        add(
            f"{'':<20}{'gateway req/s':>14}{'direct req/s':>14}{'cost':>8}{'CPU ms gw/direct':>19}{'cost':>8}"
            f"{'p50 ms gw/direct':>19}{'errors':>7}  req/s of each run, gateway | direct"
        )
        for kind, c in costs.items():
            g, d = c["gateway"], c["direct"]
            by_cpu = f"{c['cost_by_cpu']:.1%}" if c.get("cost_by_cpu") is not None else "–"
            add(
                f"{LABELS[kind]:<20}{g['rps']:>14.0f}{d['rps']:>14.0f}{c['cost']:>8.1%}"
                f"{sum(g['cpu_ms'].values()):>10.2f} / {sum(d['cpu_ms'].values()):<6.2f}{by_cpu:>8}"
                f"{g['p50_ms']:>10.1f} / {d['p50_ms']:<6.1f}{g['errors'] + d['errors']:>7}"
                f"  {' '.join(map(str, g['rps_runs']))} | {' '.join(map(str, d['rps_runs']))}"
            )
        add("(cost = 1 - gateway ÷ direct, by req/s and by CPU per request; on a machine whose cores are the")
        add(" limit the two estimate the same thing, and the CPU one is the steadier)")
        add("")
        add("CPU per request, in ms of one core, through the gateway (POST /orders: until settled):")
        groups = []
        for c in costs.values():
            groups += [g for g, ms in c["gateway"]["cpu_ms"].items() if ms >= 0.05 and g not in groups]
        add(f"{'':<20}{'total':>7}{'ceiling':>9}  " + "  ".join(groups))
        for kind, c in costs.items():
            cpu = c["gateway"]["cpu_ms"]
            total = sum(cpu.values())
            ceiling = summary["machine"]["cpus"] * 1000 / total if total else 0
            add(
                f"{LABELS[kind]:<20}{total:>7.2f}{ceiling:>7.0f}/s  "
                + "  ".join(f"{cpu.get(g, 0):>{len(g)}.2f}" for g in groups)
            )
        add("(ceiling: the req/s all cores could serve at that CPU cost, with nothing else running)")
    gw = summary["phases"].get("gateway")
    if gw and gw.get("cpu"):
        cores = gw["cpu"]["cores"]
        system = sum(c for group, c in cores.items() if group not in ("wrk (load generator)", "bench driver", "other"))
        add(
            f"Kong's CPU in the mixed run: {cores.get('gateway', 0):.2f} cores, "
            f"{cores.get('gateway', 0) / max(system, 1e-9):.1%} of what the system used"
        )
    add("")
    add("settlement lag (created_at → settled_at of each order placed, read from the orders API):")
    for name, lag in summary["settlement"].items():
        add(
            f"  {name:<8} {lag['orders']} orders {dict(lag['by_status'])}: p50 {fmt_s(lag['p50_s'])}, "
            f"p95 {fmt_s(lag['p95_s'])}, p99 {fmt_s(lag['p99_s'])}, max {fmt_s(lag['max_s'])}; "
            f"the last settled {fmt_s(lag['drained_after_end_s'])} after the load stopped"
            + (f"; {lag['unsettled']} NOT SETTLED" if lag["unsettled"] else "")
        )
    for broker in summary.get("broker") or []:
        add("")
        add(f"broker side ({broker['workers']} products-worker(s) working off a backlog):")
        if "events_per_s" in broker:
            add(
                f"  {broker['events']} OrderCreated events: {broker['events_per_s']:.0f} events/s "
                f"from the first claim to the last ({broker['span_s']:.2f}s)"
            )
        else:
            add("  the workers did not finish the backlog in time")
        if "all_settled_after_start_s" in broker:
            add(
                f"  all those orders CONFIRMED/REJECTED {broker['all_settled_after_start_s']:.2f}s after the workers "
                f"started (~{broker['orders_queued'] / broker['all_settled_after_start_s']:.0f} orders/s end to end, "
                "through products-relay and orders-worker)"
            )
    idle = summary.get("idle")
    if idle:
        parts = ", ".join(f"{group} {cores:.3f}" for group, cores in idle["cores"].items() if cores >= 0.0005)
        add("")
        add(f"the stack idle ({idle['seconds']:.0f}s): {idle['stack_cores']:.1%} of a core ({parts})")
    for name, phase in summary["phases"].items():
        if phase.get("cpu"):
            cpu = phase["cpu"]
            parts = ", ".join(f"{group} {cores:.2f}" for group, cores in cpu["cores"].items() if cores >= 0.01)
            add("")
            add(f"CPU in the {name} run ({cpu['cpus']} cores, {cpu['machine_busy']:.0%} busy), in cores: {parts}")
    warnings = [(name, w) for name, phase in summary["phases"].items() for w in phase.get("warnings", [])]
    for kind, c in (costs or {}).items():
        foreign = max(c["gateway"]["foreign_cores"], c["direct"]["foreign_cores"])
        if foreign > 0.1:
            warnings.append(
                (
                    f"gateway cost, {LABELS[kind]}",
                    f"processes outside this stack used up to {foreign:.2f} cores: the numbers are disturbed",
                )
            )
        if c["gateway"]["restarted"] or c["direct"]["restarted"]:
            warnings.append((f"gateway cost, {LABELS[kind]}", "stack processes were restarted: not valid"))
    for name, warning in dict.fromkeys(warnings):
        add(f"WARNING ({name}): {warning}")
    add("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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
    parser.add_argument("--idle", type=float, default=10, help="seconds of the idle stack's CPU first (0: skip)")
    parser.add_argument(
        "--plots", type=Path, help="also draw the run's plots (scripts/bench_plots.py) into this directory"
    )
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
    args = parser.parse_args(argv)

    check_stack(args)
    idle = None
    if args.idle:
        print(f"the stack idle for {args.idle:.0f}s", file=sys.stderr, flush=True)
        idle = idle_phase(args.idle)
    direct = direct_available(args)
    if not direct:
        print("bench: the services don't answer on their own addresses; no gateway cost", file=sys.stderr)
    run_id = datetime.now().strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:4]
    rates = parse_kinds("--rate", args.rate) if args.rate else None
    connections = connections_for(args, rates)
    args.cost_kinds = list(connections)

    print(f"setting up: {args.accounts} users, {args.products} products", file=sys.stderr, flush=True)
    users = create_users(args, run_id)
    ids, scarce = seed_products(args, users[0][1], run_id)
    vacuumed = None
    if not args.no_vacuum:
        print("VACUUM ANALYZE of the services' databases", file=sys.stderr, flush=True)
        vacuumed = vacuum(args)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    timeline = []  # (name, started, ended) of every load run, for the settlement windows
    try:
        (workdir / "ids").write_text("\n".join(map(str, ids)) + "\n")
        (workdir / "users").write_text("".join(f"{uid} {token}\n" for uid, token in users))
        code, page = Http(args.gateway).call("GET", "/products?per_page=20")
        files = {
            "ids": workdir / "ids",
            "users": workdir / "users",
            "scarce": scarce,
            "pages": max(1, min(10, page["total"] // 20)),
        }

        def targets(gateway: bool) -> dict:
            bases = {"get": args.products_url, "list": args.products_url, "order": args.orders_url}
            return {kind: (args.gateway if gateway else bases[kind], n) for kind, n in connections.items()}

        if args.warmup and args.duration:
            print(f"warming up for {args.warmup:.0f}s", file=sys.stderr, flush=True)
            run_wrk("warmup", targets(True), args.warmup, files, "bearer", args, show_progress=False, rates=rates)
        phases = {}
        offered = f", offering {rates} requests/s" if rates else " (closed loop)"
        if args.duration:
            print(
                f"mixed load through the gateway: {sum(connections.values())} users {connections}{offered}",
                file=sys.stderr,
                flush=True,
            )
            phases["gateway"] = run_wrk("gateway", targets(True), args.duration, files, "bearer", args, rates=rates)
            timeline.append(("gateway", phases["gateway"].started, phases["gateway"].ended))
        if direct and args.direct_mix and args.duration:
            print("the same mix straight to the services", file=sys.stderr, flush=True)
            phases["direct"] = run_wrk("direct", targets(False), args.duration, files, "header", args, rates=rates)
            timeline.append(("direct", phases["direct"].started, phases["direct"].ended))
        costs = None
        if direct and args.cost_seconds:
            print("gateway cost: each request alone, through the gateway and direct", file=sys.stderr, flush=True)
            cost_started = time.time()
            costs = gateway_cost(args, files, users, direct)
            timeline.append(("cost", cost_started, time.time()))

        summary = {
            "when": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["scripts/bench", *(argv if argv is not None else sys.argv[1:])]).strip(),
            "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
            "users": sum(connections.values()),
            "offered": rates,
            "duration": args.duration,
            "connections": connections,
            "phases": {
                name: {
                    "results": p.results,
                    "cpu": p.cpu,
                    "started": p.started,
                    "ended": p.ended,
                    "warnings": p.warnings,
                }
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

        if "order" in connections and phases:
            placed = sum(p.results["order"]["statuses"].get("201", 0) for p in phases.values())
            orders = wait_settled(args, users, direct, placed, 120)
            for i, (name, started, ended) in enumerate(timeline):
                if name in phases:
                    window_end = timeline[i + 1][1] if i + 1 < len(timeline) else time.time() + 3600
                    summary["settlement"][name] = lag_stats(orders, started, window_end, ended)

        if args.broker_seconds:
            summary["broker"] = []
            for workers in args.workers:
                print(
                    f"{workers} products-worker(s) on a backlog: stopped while {args.broker_seconds:.0f}s of orders "
                    "queue up, then started",
                    file=sys.stderr,
                    flush=True,
                )
                summary["broker"].append(broker_phase(args, files, users, direct, workers))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    text = report(summary)
    print(text)
    out = args.json or RESULTS / f"{run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"numbers: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.plots:
        import bench_plots  # scripts/ is on sys.path; matplotlib is imported only when plotting

        for path in bench_plots.draw(summary, args.plots):
            print(f"plot: {path}")
    errors = sum(r["errors"] for p in phases.values() for r in p.results.values())
    errors += sum(c[route]["errors"] for c in (costs or {}).values() for route in ("gateway", "direct"))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
