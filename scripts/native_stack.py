"""The native stack: the whole system as local processes, HAProxy in front.

For hosts without a Docker engine. It runs what docker-compose.yml runs, against
the PostgreSQL and RabbitMQ already on this host, with every service bound to
127.0.0.1 and only the gateway on port 8000. The gateway's config is generated
from kong.yml, so both ways of running share one routing and auth contract.

    python scripts/native_stack.py up|down|status|logs

(normally through scripts/stack, which installs what is missing first).
"""

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import envfile  # scripts/ is on sys.path: this file runs as a script
import native_prometheus

from common import provision
from common.messaging.process import readiness
from common.settings import (
    LOCAL_METRICS_PORTS,
    LOCAL_PORTS,
    PRODUCTS_INTERNAL_PORT,
    SERVICES,
    Settings,
    admin_database_url,
    service_database_url,
)
from kong.haproxy import DEFAULT_METRICS_BIND

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
LOGS = VAR / "log"
RUN = VAR / "run"
BIN = Path(sys.executable).parent

# Background processes, by the service whose code and database they use.
BACKGROUND = [("products", "worker"), ("products", "relay"), ("orders", "worker"), ("orders", "relay")]
# --scale NAME=N runs N copies of a process (the gateway excepted). Copy k > 1 is
# NAME.k, with its own log, pid and heartbeat; a web service's copy listens
# COPY_PORTS higher per copy, a background process's metrics COPY_METRICS_PORTS.
SCALABLE = [*LOCAL_PORTS, *(f"{service}-{role}" for service, role in BACKGROUND)]
MAX_COPIES = 9
COPY_PORTS = 100
COPY_METRICS_PORTS = 10
SCALE_FILE = RUN / "scale.json"
# `up --observability` runs Prometheus too, until `down`.
OBSERVABILITY_FILE = RUN / "observability"
UP_DEADLINE = 30.0
STOP_DEADLINE = 15.0
# What the running processes were started from. `up` restarts them when it has
# changed (an edit, a pull, a new lock file or secret), so a stack left running
# never serves old code to the next `scripts/test`.
CODE_FILE = RUN / "code.sha256"
CODE = ["common", "users", "products", "orders", "kong", "kong.yml", "requirements", ".env"]


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict = field(default_factory=dict)
    health_url: str | None = None
    heartbeat: Path | None = None
    group: str = ""  # the process this is a copy of (its own name if it isn't one)

    @property
    def pidfile(self) -> Path:
        return RUN / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return LOGS / f"{self.name}.log"


# -- configuration -----------------------------------------------------------------


def gateway_bind() -> str:
    return os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")


def gateway_url() -> str:
    host, port = gateway_bind().rsplit(":", 1)
    return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"


def parse_scale(text: str) -> dict[str, int]:
    """ "products-worker=3,orders-relay=2" -> {"products-worker": 3, "orders-relay": 2}"""
    scale = {}
    for item in filter(None, text.split(",")):
        name, _, count = item.partition("=")
        if name not in SCALABLE:
            sys.exit(f"--scale: no such process {name!r} (one of {', '.join(SCALABLE)})")
        if not count.isdigit() or not 1 <= int(count) <= MAX_COPIES:
            sys.exit(f"--scale {item!r}: give 1 to {MAX_COPIES} copies")
        scale[name] = int(count)
    return scale


def current_scale() -> dict[str, int]:
    """What the last `up --scale` asked for (kept until `down`)."""
    try:
        return json.loads(SCALE_FILE.read_text())
    except FileNotFoundError:
        return {}


def copies(name: str, scale: dict[str, int]) -> list[tuple[int, str]]:
    """(copy number, process name) of each copy of `name`."""
    return [(k, name if k == 1 else f"{name}.{k}") for k in range(1, scale.get(name, 1) + 1)]


def web_port(service: str, copy: int) -> int:
    return LOCAL_PORTS[service] + COPY_PORTS * (copy - 1)


def processes(secrets_env: dict, scale: dict[str, int] | None = None) -> list[Proc]:
    """Every process of the stack, copies included. `secrets_env` matters only for
    starting them (stop, status and logs pass {})."""
    scale = current_scale() if scale is None else scale
    # orders asks every copy of products in turn (orders/catalog.py).
    products_internal = [
        f"http://127.0.0.1:{PRODUCTS_INTERNAL_PORT + COPY_PORTS * (k - 1)}" for k, _ in copies("products", scale)
    ]
    # Each process inherits this environment and reads what it needs with
    # common.settings, whose defaults are this stack's; only what differs is set.
    service_env = {
        "users": lambda k: {"JWT_SECRET": secrets_env.get("JWT_SECRET", "")},
        "products": lambda k: {"INTERNAL_BIND": f"127.0.0.1:{PRODUCTS_INTERNAL_PORT + COPY_PORTS * (k - 1)}"},
        "orders": lambda k: {"PRODUCTS_URL": ",".join(products_internal)} if len(products_internal) > 1 else {},
    }
    procs = [
        Proc(
            name,
            [str(BIN / "gunicorn"), "-c", "python:common.http.gunicorn_conf"],
            {
                **service_env[service](k),
                "SERVICE": service,
                "DATABASE_URL": service_database_url(service),
                "BIND": f"127.0.0.1:{web_port(service, k)}",
            },
            health_url=f"http://127.0.0.1:{web_port(service, k)}/readyz",
            group=service,
        )
        for service in LOCAL_PORTS
        for k, name in copies(service, scale)
    ]
    # Background processes: an event worker and an outbox relay per service that has them.
    for service, role in BACKGROUND:
        for k, name in copies(f"{service}-{role}", scale):
            heartbeat = RUN / f"{name}.alive"
            metrics_port = LOCAL_METRICS_PORTS[f"{service}-{role}"] + COPY_METRICS_PORTS * (k - 1)
            procs.append(
                Proc(
                    name,
                    [sys.executable, "-m", f"{service}.{role}"],
                    {
                        "SERVICE": service,
                        "DATABASE_URL": service_database_url(service),
                        "HEARTBEAT_FILE": str(heartbeat),
                        "METRICS_PORT": str(metrics_port),
                    },
                    heartbeat=heartbeat,
                    group=f"{service}-{role}",
                )
            )
    if OBSERVABILITY_FILE.exists():
        procs.append(
            Proc(
                native_prometheus.NAME,
                native_prometheus.argv(VAR / "prometheus.yml", VAR / "prometheus"),
                health_url=f"{native_prometheus.url()}/-/ready",
                group=native_prometheus.NAME,
            )
        )
    procs.append(
        Proc(
            "gateway",
            ["haproxy", "-db", "-f", str(VAR / "haproxy.cfg")],
            health_url=f"{gateway_url()}/products",
            group="gateway",
        )
    )
    return procs


def scrape_targets(procs: list[Proc]) -> dict[str, list[tuple[str, str]]]:
    """What Prometheus scrapes, by job (the names observability/prometheus/prometheus.yml uses)."""
    services = [(p.name, p.env["BIND"]) for p in procs if p.group in LOCAL_PORTS]
    background = [(p.name, f"127.0.0.1:{p.env['METRICS_PORT']}") for p in procs if "METRICS_PORT" in p.env]
    gateway = [("gateway", DEFAULT_METRICS_BIND)]  # HAProxy's exporter (kong.yml's prometheus plugin)
    return {"services": services, "background": background, "gateway": gateway}


# -- set-up steps ------------------------------------------------------------------


def provision_databases() -> None:
    """A login role and a database per service (common/provision.py)."""
    try:
        created = provision.provision(
            admin_database_url(), {service: service_database_url(service) for service in SERVICES}
        )
    except provision.psycopg2.Error as exc:
        sys.exit(f"provisioning the databases failed (is PostgreSQL up? PG_ADMIN_URL?): {str(exc).strip()}")
    for database in created:
        print(f"created database {database}")


def migrate() -> None:
    for service in SERVICES:
        # Needs the service's database only (common/migrate.py): no secret.
        result = subprocess.run(
            [sys.executable, "-m", "common.migrate", service],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": service_database_url(service)},
            capture_output=True,
            text=True,
        )
        (LOGS / "migrate.log").open("a").write(result.stdout + result.stderr)
        if result.returncode != 0:
            sys.exit(f"migrating {service} failed:\n{result.stderr[-2000:]}")


def write_gateway_config(secrets_env: dict, scale: dict[str, int]) -> bool:
    """Generate var/haproxy.cfg from kong.yml, every copy of a service its server;
    True if it changed."""
    target = VAR / "haproxy.cfg"
    before = target.read_bytes() if target.exists() else b""
    upstreams = [
        f"--upstream={service}=" + ",".join(f"127.0.0.1:{web_port(service, k)}" for k, _ in copies(service, scale))
        for service in LOCAL_PORTS
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kong",
            "haproxy",
            "--config",
            str(ROOT / "kong.yml"),
            "--out",
            str(target),
            "--bind",
            gateway_bind(),
            *upstreams,
        ],
        cwd=ROOT,
        env={**os.environ, **secrets_env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"generating the gateway config from kong.yml failed:\n{result.stderr.strip()}")
    check = subprocess.run(["haproxy", "-c", "-q", "-f", str(target)], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"HAProxy rejects the generated config:\n{check.stdout}{check.stderr}")
    return hashlib.sha256(before).digest() != hashlib.sha256(target.read_bytes()).digest()


# -- processes ---------------------------------------------------------------------


def code_fingerprint(root: Path = ROOT) -> str:
    """A digest of the code and settings the stack's processes load."""
    digest = hashlib.sha256()
    for name in CODE:
        path = root / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(f"{file.relative_to(root)}\0".encode() + file.read_bytes() + b"\0")
    return digest.hexdigest()


def running_pid(proc: Proc) -> int | None:
    try:
        pid = int(proc.pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError):  # never started, or already gone
        return None
    # Guard against a recycled pid: it must still be our command.
    return pid if proc.argv[-1].encode() in cmdline else None


def start(proc: Proc) -> subprocess.Popen:
    if proc.heartbeat is not None:
        proc.heartbeat.unlink(missing_ok=True)  # a stale beat must not pass for this run's
    log = proc.logfile.open("ab")
    child = subprocess.Popen(
        proc.argv,
        cwd=ROOT,
        env={**os.environ, **proc.env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: `down` stops it and its children
    )
    proc.pidfile.write_text(str(child.pid))
    return child


def stop(proc: Proc, sig: int = signal.SIGTERM) -> bool:
    pid = running_pid(proc)
    if pid is None:
        proc.pidfile.unlink(missing_ok=True)
        return False
    os.killpg(pid, sig)
    deadline = time.monotonic() + STOP_DEADLINE
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.1)
    if _group_alive(pid):
        print(f"{proc.name} did not stop within {STOP_DEADLINE:.0f}s; killing it")
        os.killpg(pid, signal.SIGKILL)
    proc.pidfile.unlink(missing_ok=True)
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still "exists" until reaped.
    try:
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        return Path(f"/proc/{pgid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def health(proc: Proc) -> str | None:
    """None if healthy, else what is wrong."""
    if proc.heartbeat is not None:
        return readiness(str(proc.heartbeat))
    try:
        with urllib.request.urlopen(proc.health_url, timeout=2) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # 503 from /readyz names the failing dependency
        return f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:120]}"
    except (urllib.error.URLError, OSError) as exc:
        return f"not answering ({exc})"


# -- commands ----------------------------------------------------------------------


def ensure_running(procs: list[Proc]) -> None:
    """Start those not running, then wait until all are healthy."""
    started = {proc.name: start(proc) for proc in procs if running_pid(proc) is None}
    deadline = time.monotonic() + UP_DEADLINE
    waiting = list(procs)
    while waiting and time.monotonic() < deadline:
        for proc in list(waiting):
            child = started.get(proc.name)
            exited = child.poll() is not None if child else running_pid(proc) is None
            if exited:
                tail = proc.logfile.read_text(errors="replace")[-2000:]
                sys.exit(f"{proc.name} exited during start-up; its log ends:\n{tail}")
            if health(proc) is None:
                waiting.remove(proc)
        time.sleep(0.1)
    if waiting:
        names = ", ".join(proc.name for proc in waiting)
        sys.exit(f"not healthy after {UP_DEADLINE:.0f}s: {names} (see {LOGS.relative_to(ROOT)}/)")


def up(args) -> int:
    started_at = time.monotonic()
    for folder in (LOGS, RUN):
        folder.mkdir(parents=True, exist_ok=True)
    before = current_scale()
    scale = {**before, **parse_scale(args.scale)}
    secrets_env = envfile.load()
    provision_databases()
    migrate()
    # Copies the new scale has no place for stop first.
    wanted = {proc.name for proc in processes({}, scale)}
    for proc in processes({}, before):
        if proc.name not in wanted and stop(proc):
            print(f"stopped {proc.name} (scaled down)")
    SCALE_FILE.write_text(json.dumps(scale))
    if args.observability:
        OBSERVABILITY_FILE.touch()
    gateway_changed = write_gateway_config(secrets_env, scale)
    if OBSERVABILITY_FILE.exists():
        procs = processes({}, scale)
        if native_prometheus.write(VAR / "prometheus.yml", scrape_targets(procs)):
            # Other targets (a new --scale): restarted below with the new config.
            [prometheus] = [proc for proc in procs if proc.name == native_prometheus.NAME]
            stop(prometheus)

    procs = processes(secrets_env, scale)
    code = code_fingerprint()
    started_from = CODE_FILE.read_text() if CODE_FILE.exists() else None
    running = [proc for proc in procs if running_pid(proc) is not None]
    if running and started_from != code:
        print("the code changed since the stack started: restarting its processes")
        for proc in reversed(running):
            stop(proc)
    gateway = procs[-1]
    # The gateway starts last, once its upstreams answer: HAProxy marks a server
    # down on its first failed check and takes a few seconds to trust it again.
    ensure_running(procs[:-1])
    if gateway_changed and running_pid(gateway) is not None:
        print("kong.yml or the scale changed: restarting the gateway")
        stop(gateway)
    ensure_running([gateway])
    CODE_FILE.write_text(code)

    print(f"native stack up in {time.monotonic() - started_at:.1f}s")
    print(f"  gateway (HAProxy from kong.yml)  {gateway_url()}")
    for name, port in LOCAL_PORTS.items():
        print(f"  {name:<32} http://127.0.0.1:{port}  (loopback only; OpenAPI at /openapi.json)")
    if OBSERVABILITY_FILE.exists():
        print(f"  prometheus                       {native_prometheus.url()}  (alerts: /alerts)")
    if any(count > 1 for count in scale.values()):
        print(f"  copies                           {', '.join(f'{n}={c}' for n, c in scale.items() if c > 1)}")
    print(f"  logs                             {LOGS.relative_to(ROOT)}/  (scripts/stack logs)")
    return 0


def down(_args) -> int:
    for proc in reversed(processes({})):
        if stop(proc):
            print(f"stopped {proc.name}")
    SCALE_FILE.unlink(missing_ok=True)  # the next `up` starts one of each
    CODE_FILE.unlink(missing_ok=True)
    OBSERVABILITY_FILE.unlink(missing_ok=True)  # and no Prometheus unless asked again
    return 0


def selected(names: list[str], secrets_env: dict) -> list[Proc]:
    """The processes `names` name: a copy by its own name (products-worker.2; .1
    is the first), or a process with all its copies by its name (products-worker)."""
    procs = processes(secrets_env)
    chosen = []
    for name in names:
        group, _, number = name.rpartition(".") if "." in name else (name, "", "")
        matches = (
            [p for p in procs if p.group == group]
            if not number
            else [p for p in procs if p.name == name or (number == "1" and p.name == group)]
        )
        if not matches:
            sys.exit(f"no such process: {name} (have: {', '.join(p.name for p in procs)})")
        chosen += [proc for proc in matches if proc not in chosen]
    return chosen


def start_some(args) -> int:
    """Start single processes of a stack that is up (after `stop`, say)."""
    ensure_running(selected(args.names, envfile.load()))
    return 0


def stop_some(args) -> int:
    """Stop single processes: SIGTERM, or SIGKILL with --kill to simulate a crash."""
    for proc in selected(args.names, {}):
        if stop(proc, signal.SIGKILL if args.kill else signal.SIGTERM):
            print(f"{'killed' if args.kill else 'stopped'} {proc.name}")
    return 0


def status(_args) -> int:
    """One screen: processes, queues, outboxes."""
    all_ok = True
    print(f"{'process':<20} {'pid':>7}  {'state':<8} health")
    for proc in processes({}):
        pid = running_pid(proc)
        problem = health(proc) if pid else "stopped"
        all_ok &= problem is None
        print(f"{proc.name:<20} {pid or '-':>7}  {'running' if pid else 'stopped':<8} {problem or 'ok'}")
    print()
    print_queues()
    print()
    print_outboxes()
    return 0 if all_ok else 1


def print_queues() -> None:
    from amqp.exceptions import AMQPError
    from kombu import Connection
    from kombu.exceptions import KombuError

    from common.messaging import topology

    print(f"{'queue':<28} {'ready':>7} {'consumers':>9}")
    try:
        with Connection(Settings.from_env("products").amqp_url, connect_timeout=2) as conn:
            for queue in topology.DECLARED_QUEUES:
                declared = queue(conn.default_channel).queue_declare(passive=True)
                print(f"{queue.name:<28} {declared.message_count:>7} {declared.consumer_count:>9}")
    except (KombuError, AMQPError, OSError) as exc:  # broker away, or a queue not declared yet
        print(f"(RabbitMQ: {exc})")


def print_outboxes() -> None:
    import psycopg2

    print(f"{'outbox':<28} {'unsent':>7} {'oldest':>9}")
    for service in ("products", "orders"):
        url = service_database_url(service).replace("postgresql+psycopg2://", "postgresql://")
        try:
            with psycopg2.connect(url, connect_timeout=2) as connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
                    "FROM outbox WHERE published_at IS NULL"
                )
                unsent, age = cursor.fetchone()
            print(f"{service:<28} {unsent:>7} {age:>8.1f}s")
        except psycopg2.Error as exc:
            print(f"{service:<28} (PostgreSQL: {str(exc).strip()})")


def logs(args) -> int:
    procs = selected(args.names, {}) if args.names else processes({})
    files = [proc.logfile for proc in procs if proc.logfile.exists()]
    if not files:
        print("no logs yet: run scripts/stack up")
        return 1
    if args.request_id:
        return story(files, args.request_id)
    os.execvp("tail", ["tail", "-n", str(args.lines), *(["-F"] if args.follow else []), *map(str, files)])


def story(files: list[Path], request_id: str) -> int:
    """Every line that names `request_id`, from every process, in time order."""
    found = []
    for file in files:
        for line in file.read_text(errors="replace").splitlines():
            if request_id in line:
                found.append((_timestamp(line), file.stem, line))
    for _, name, line in sorted(found, key=lambda item: item[0]):
        print(f"{name:<20} {line}")
    if not found:
        print(f"no log line names request id {request_id}")
    return 0 if found else 1


def _timestamp(line: str) -> str:
    """A sortable UTC timestamp: JSON lines carry "ts"; HAProxy's say [24/Nov/2026:02:03:44.123]."""
    if line.startswith("{"):
        try:
            return json.loads(line).get("ts", "")
        except ValueError:
            return ""
    match = re.search(r"\[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2}\.\d{3})\]", line)
    if not match:
        return ""
    moment = datetime.strptime(match.group(1), "%d/%b/%Y:%H:%M:%S.%f").replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack", description="Run the system natively.")
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start everything (idempotent) and wait until it serves")
    up_parser.add_argument(
        "--scale",
        default="",
        metavar="NAME=N,...",
        help=f"run N copies of these processes (any but the gateway; 1 to {MAX_COPIES}); kept until `down`",
    )
    up_parser.add_argument(
        "--observability",
        action="store_true",
        help="also run Prometheus against the stack, with the alert rules (kept until `down`)",
    )
    up_parser.set_defaults(run=up)
    commands.add_parser("down", help="stop everything").set_defaults(run=down)
    commands.add_parser("status", help="what runs and whether it is healthy").set_defaults(run=status)
    start_parser = commands.add_parser("start", help="start some processes and wait until healthy")
    start_parser.add_argument("names", nargs="+")
    start_parser.set_defaults(run=start_some)
    stop_parser = commands.add_parser("stop", help="stop some processes")
    stop_parser.add_argument("names", nargs="+")
    stop_parser.add_argument("--kill", action="store_true", help="SIGKILL, no chance to clean up (a crash)")
    stop_parser.set_defaults(run=stop_some)
    log_parser = commands.add_parser("logs", help="show the processes' logs")
    log_parser.add_argument("names", nargs="*", help="processes to show (default: all)")
    log_parser.add_argument("-f", "--follow", action="store_true")
    log_parser.add_argument("-n", "--lines", type=int, default=50)
    log_parser.add_argument("--request-id", help="the whole story of one request, across processes, in time order")
    log_parser.set_defaults(run=logs)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    # Like any Unix tool: when the reader of our output goes (`status | head`),
    # end quietly instead of with a BrokenPipeError. (Windows has no SIGPIPE.)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
