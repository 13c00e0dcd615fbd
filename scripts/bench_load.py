"""The bench's load runs: wrk processes driving the stack (scripts/bench.lua), the
CPU each part of the machine spent meanwhile, and a small HTTP client for
set-up and read-back (the load itself is wrk's)."""

import http.client
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import native_supervisor  # scripts/ is on sys.path: bench.py runs as a script

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "scripts" / "bench.lua"
KINDS = ("get", "list", "order")
LABELS = {"get": "GET /products/{id}", "list": "GET /products", "order": "POST /orders"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The CPU groups that are not the system under test.
NOT_THE_SYSTEM = ("wrk (load generator)", "bench driver", "other")


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


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
            procs[kind] = _start_wrk(kind, base, connections, duration, files, auth, args, progress_dir, rates)
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
    _count_cpu(phase, before, children_before)
    _warn(phase, pids_before)
    for kind, (out, err) in outputs.items():
        phase.results[kind] = _result(kind, procs[kind].returncode, out, err, targets[kind][1], rates)
    return phase


def _start_wrk(kind, base, connections, duration, files, auth, args, progress_dir: Path, rates) -> subprocess.Popen:
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
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--timeout", "10s", "-s", str(LUA), base]
    env = dict(os.environ)
    env.pop("BENCH_RATE", None)
    if rates and rates.get(kind):
        env["BENCH_RATE"] = str(rates[kind])
    return subprocess.Popen(
        [*argv, "--", *script_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _count_cpu(phase: Phase, before, children_before) -> None:
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


def _warn(phase: Phase, pids_before: dict) -> None:
    if _stack_groups() != pids_before:
        phase.warnings.append("stack processes were restarted during this phase: its numbers are not valid, run again")
    if pids_before and phase.cpu["cores"]["other"] > 0.1:  # (no pid files: not the native stack)
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(phase.cpu["other"].items())[:4])
        phase.warnings.append(
            f"processes outside this stack used {phase.cpu['cores']['other']:.2f} cores ({top}): "
            "the numbers are disturbed"
        )


def _result(kind: str, returncode: int, out: str, err: str, connections: int, rates) -> dict:
    """wrk's numbers for one kind, as scripts/bench.lua prints them (BENCH-JSON)."""
    line = next((text for text in out.splitlines() if text.startswith("BENCH-JSON ")), None)
    if returncode != 0 or line is None:
        die(f"wrk ({kind}) failed:\n{out}\n{err}")
    result = json.loads(line.removeprefix("BENCH-JSON "))
    seconds = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds
    result["connections"] = connections
    result["offered_rps"] = (rates or {}).get(kind)
    sockets = sum(result["socket_errors"].values())
    result["errors"] = result["unexpected"] + sockets
    return result


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
