"""The native stack: the whole system as local processes, real Kong in front.

For hosts without a Docker engine. It runs what docker-compose.yml runs, against
the PostgreSQL and RabbitMQ already on this host, with every service bound to
127.0.0.1 and only the gateway, the host's Kong 3.9 with the same kong.yml and
kong/kong.env, on port 8000. Every process runs under supervisord
(scripts/native_supervisor.py), which restarts one that dies.

    python scripts/native_stack.py up|down|status|logs|start|stop

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
import native_kong
import native_prometheus
import native_supervisor as supervisor

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

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
LOGS = VAR / "log"
RUN = VAR / "run"
BIN = Path(sys.executable).parent

# Background processes, by the service whose code and database they use.
BACKGROUND = [("products", "worker"), ("products", "relay"), ("orders", "worker"), ("orders", "relay")]
# --scale NAME=N runs N copies of a process (the gateway excepted). Copy k > 1 is
# NAME.k, with its own log and heartbeat; a web service's copy listens
# COPY_PORTS higher per copy, a background process's metrics COPY_METRICS_PORTS.
SCALABLE = [*LOCAL_PORTS, *(f"{service}-{role}" for service, role in BACKGROUND)]
MAX_COPIES = 9
COPY_PORTS = 100
COPY_METRICS_PORTS = 10
SCALE_FILE = RUN / "scale.json"
# `up --observability` runs Prometheus too, until `down`.
OBSERVABILITY_FILE = RUN / "observability"
UP_DEADLINE = 30.0
# What the running processes were started from. `up` restarts them when it has
# changed (an edit, a pull, a new lock file or secret), so a stack left running
# never serves old code to the next `scripts/test`.
CODE_FILE = RUN / "code.sha256"
CODE = ["common", *SERVICES, "kong", "kong.yml", "requirements", ".env"]


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict = field(default_factory=dict)
    health_url: str | None = None
    heartbeat: Path | None = None
    group: str = ""  # the process this is a copy of (its own name if it isn't one)
    stop_signal: str = "TERM"

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
            native_kong.argv(),
            native_kong.env(gateway_bind()),
            health_url=native_kong.health_url(),
            group="gateway",
            # nginx's graceful shutdown: requests in flight are finished.
            stop_signal="QUIT",
        )
    )
    return procs


def scrape_targets(procs: list[Proc]) -> dict[str, list[tuple[str, str]]]:
    """What Prometheus scrapes, by job (the names observability/prometheus/prometheus.yml uses)."""
    services = [(p.name, p.env["BIND"]) for p in procs if p.group in LOCAL_PORTS]
    background = [(p.name, f"127.0.0.1:{p.env['METRICS_PORT']}") for p in procs if "METRICS_PORT" in p.env]
    gateway = [("gateway", native_kong.metrics_bind())]  # kong.yml's prometheus plugin
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


def upstreams(scale: dict[str, int]) -> dict[str, list[str]]:
    """Each service's copies, where Kong balances its requests."""
    return {
        service: [f"127.0.0.1:{web_port(service, k)}" for k, _ in copies(service, scale)] for service in LOCAL_PORTS
    }


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


def forget_heartbeats(procs: list[Proc]) -> None:
    """Before these start: an earlier run's beat must not pass for theirs."""
    for proc in procs:
        if proc.heartbeat is not None:
            proc.heartbeat.unlink(missing_ok=True)


def ensure_running(procs: list[Proc]) -> None:
    """Start those not running, then wait until all are healthy."""
    names = set(supervisor.stopped([proc.name for proc in procs]))
    stopped = [proc for proc in procs if proc.name in names]
    forget_heartbeats(stopped)
    for proc in stopped:
        supervisor.start(proc.name)
    deadline = time.monotonic() + UP_DEADLINE
    waiting = list(procs)
    while waiting and time.monotonic() < deadline:
        states = supervisor.states()
        for proc in list(waiting):
            if states[proc.name]["statename"] in ("BACKOFF", "FATAL"):
                tail = proc.logfile.read_text(errors="replace")[-2000:]
                sys.exit(f"{proc.name} keeps exiting during start-up; its log ends:\n{tail}")
            # Healthy is proof enough that it runs: supervisord calls it RUNNING
            # only after startsecs, and a waiting caller (the bench's drain) shouldn't.
            if states[proc.name]["statename"] in ("STARTING", "RUNNING") and health(proc) is None:
                waiting.remove(proc)
        time.sleep(0.1)
    if waiting:
        names = ", ".join(proc.name for proc in waiting)
        sys.exit(f"not healthy after {UP_DEADLINE:.0f}s: {names} (see {LOGS.relative_to(ROOT)}/)")


def up(args) -> int:
    started_at = time.monotonic()
    for folder in (LOGS, RUN):
        folder.mkdir(parents=True, exist_ok=True)
    scale = {**current_scale(), **parse_scale(args.scale)}
    secrets_env = envfile.load()
    provision_databases()
    migrate()
    SCALE_FILE.write_text(json.dumps(scale))
    if args.observability:
        OBSERVABILITY_FILE.touch()
    procs = processes(secrets_env, scale)
    # What reads a file at start only, and must start again when it changed.
    stale = set()
    if native_kong.render(secrets_env, upstreams(scale), dict(os.environ)):
        stale.add("gateway")  # kong.yml, the secret or the scale
    if OBSERVABILITY_FILE.exists() and native_prometheus.write(VAR / "prometheus.yml", scrape_targets(procs)):
        stale.add(native_prometheus.NAME)  # new scrape targets
    code = code_fingerprint()
    started_from = CODE_FILE.read_text() if CODE_FILE.exists() else None
    if supervisor.running() and started_from != code:
        # supervisord passes its own environment on, and the code reads it at
        # start: all of it starts anew.
        print("the code changed since the stack started: restarting it")
        supervisor.shutdown()
    supervisor.write_config(procs)
    if not supervisor.running():
        forget_heartbeats(procs)
        supervisor.start_daemon()
    else:
        for name in supervisor.apply_config():
            print(f"restarted or stopped {name} (its command, settings or scale changed)")
            stale.discard(name)
        for name in sorted(stale):
            print(f"restarting {name}: the file it reads changed")
            supervisor.restart(name)
    ensure_running(procs)
    CODE_FILE.write_text(code)

    print(f"native stack up in {time.monotonic() - started_at:.1f}s")
    print(f"  gateway (Kong, kong.yml)         {gateway_url()}")
    print(f"  Kong's status API                http://{native_kong.STATUS_BIND}/status  (and /metrics)")
    print(f"  Kong's Admin API                 {native_kong.ADMIN_URL}  (loopback only; python -m kong.admin /routes)")
    for name, port in LOCAL_PORTS.items():
        print(f"  {name:<32} http://127.0.0.1:{port}  (loopback only; OpenAPI at /openapi.json)")
    if OBSERVABILITY_FILE.exists():
        print(f"  prometheus                       {native_prometheus.url()}  (alerts: /alerts)")
    if any(count > 1 for count in scale.values()):
        print(f"  copies                           {', '.join(f'{n}={c}' for n, c in scale.items() if c > 1)}")
    print(f"  logs                             {LOGS.relative_to(ROOT)}/  (scripts/stack logs)")
    print(f"  processes                        supervisorctl -c {supervisor.CONFIG.relative_to(ROOT)} status")
    return 0


def down(_args) -> int:
    if supervisor.shutdown():
        print("stopped every process (and supervisord)")
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
    """Start single processes of a stack that is up (after `stop`, say); returns once they are healthy."""
    ensure_running(selected(args.names, envfile.load()))
    return 0


def stop_some(args) -> int:
    """Stop single processes: gracefully, or with --kill by SIGKILL to simulate a
    crash. Either way they stay stopped until `start` (or `up`)."""
    for proc in selected(args.names, {}):
        if (supervisor.kill if args.kill else supervisor.stop)(proc.name):
            print(f"{'killed' if args.kill else 'stopped'} {proc.name}")
    return 0


def status(_args) -> int:
    """One screen: processes, queues, outboxes."""
    if not supervisor.running():
        print("the native stack is not running (scripts/stack up)")
        return 1
    all_ok = True
    states = supervisor.states()
    print(f"{'process':<20} {'pid':>7}  {'state':<8} health")
    for proc in processes({}):
        state = states.get(proc.name, {"statename": "ABSENT", "pid": 0})
        problem = health(proc) if state["statename"] == "RUNNING" else state["statename"].lower()
        all_ok &= problem is None
        print(f"{proc.name:<20} {state['pid'] or '-':>7}  {state['statename'].lower():<8} {problem or 'ok'}")
    print()
    print_queues()
    print()
    print_outboxes()
    return 0 if all_ok else 1


def print_queues() -> None:
    from amqp.exceptions import AMQPError
    from kombu import Connection
    from kombu.exceptions import KombuError

    from common.events import queues

    print(f"{'queue':<28} {'ready':>7} {'consumers':>9}")
    try:
        with Connection(Settings.from_env("products").amqp_url, connect_timeout=2) as conn:
            for queue in queues.DECLARED:
                declared = queue(conn.default_channel).queue_declare(passive=True)
                print(f"{queue.name:<28} {declared.message_count:>7} {declared.consumer_count:>9}")
    except (KombuError, AMQPError, OSError) as exc:  # broker away, or a queue not declared yet
        print(f"(RabbitMQ: {exc})")


def print_outboxes() -> None:
    import psycopg2

    print(f"{'outbox':<28} {'unsent':>7} {'oldest':>9}")
    for service in (service for service, role in BACKGROUND if role == "relay"):
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
    """A sortable UTC timestamp: JSON lines carry "ts"; Kong's access log says [07/Dec/2026:10:15:26 +0000]."""
    if line.startswith("{"):
        try:
            return json.loads(line).get("ts", "")
        except ValueError:
            return ""
    match = re.search(r"\[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]", line)
    if not match:
        return ""
    moment = datetime.strptime(match.group(1), "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
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
