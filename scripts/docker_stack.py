"""The docker compose stack: up, down, status, logs, start and stop, as
scripts/stack offers them for the native stack.

Standard library only, run by the host's python3: a Docker user needs Docker
with Compose v2 and Python, not the project's virtualenv. Everything goes
through the `docker` CLI, so Docker contexts (Docker Desktop, rootless Docker,
Colima) work as they do for the user's own commands.

    python3 scripts/docker_stack.py up|down|status|logs|start|stop [args]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import envfile  # scripts/ is on sys.path: this file runs as a script

# The gateway is Kong's service; scripts/stack names it as the native stack does.
ALIASES = {"gateway": "kong"}
ONE_SHOT = {"kong-config", "postgres-setup"}  # do their job at `up`, then exit 0
# How long `up` waits for every container to be healthy once started. The stack
# comes up in well under a minute; a container stuck restarting must not hang `up`.
WAIT_TIMEOUT = int(os.environ.get("SHOP_UP_TIMEOUT", "180"))
QUEUES = ("products.order-created", "orders.inventory-results", "shop.dead-letters")
OUTBOX_SQL = (
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM outbox WHERE published_at IS NULL"
)


# The compose profile of Prometheus and Grafana (docker-compose.yml).
OBSERVABILITY = "observability"


def compose(*args: str, check: bool = False, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "compose", *args], check=check, text=True, capture_output=capture)


def containers() -> dict[str, dict]:
    """Service name -> `docker compose ps` record, stopped containers included."""
    listing = compose("ps", "--all", "--format", "json", capture=True)
    if listing.returncode != 0:
        sys.exit(listing.stderr.strip() or "docker compose ps failed")
    text = listing.stdout.strip()
    # Compose prints one JSON object per line (older releases: one JSON array).
    records = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
    return {record["Service"]: record for record in records}


def problem(record: dict) -> str | None:
    """None if the container is as it should be, else what is wrong."""
    if record["Service"] in ONE_SHOT:
        return None if record["State"] == "exited" and record.get("ExitCode") == 0 else f"{record['State']}"
    if record["State"] != "running":
        return record["State"]
    health = record.get("Health") or "no healthcheck"
    return None if health == "healthy" else health


def service_names(names: list[str]) -> list[str]:
    return [ALIASES.get(name, name) for name in names]


# -- commands ----------------------------------------------------------------------


def up(args) -> int:
    envfile.ensure()  # compose reads JWT_SECRET from .env
    started_at = time.monotonic()
    profiles = ["--profile", OBSERVABILITY] if args.observability else []
    result = compose(*profiles, "up", "--detach", "--build", "--wait", "--wait-timeout", str(WAIT_TIMEOUT), *args.rest)
    if result.returncode != 0:
        explain_failure()
        return result.returncode
    print(f"docker compose stack up in {time.monotonic() - started_at:.0f}s")
    print(f"  gateway (Kong)   http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8000')}")
    print("  RabbitMQ UI      http://127.0.0.1:15672  (loopback only)")
    if args.observability:
        print("  Prometheus       http://127.0.0.1:9090  (loopback only; alerts: /alerts)")
        print("  Grafana          http://127.0.0.1:3000  (loopback only; admin / GRAFANA_PASSWORD, default shop-dev)")
    print("  status           scripts/stack status --docker")
    return 0


def explain_failure() -> None:
    """What `up` leaves behind when it fails: who isn't healthy, and why, from their logs."""
    for name, record in containers().items():
        wrong = problem(record)
        if wrong:
            print(f"\n--- {name}: {wrong}; its log ends:", file=sys.stderr)
            compose("logs", "--no-color", "--tail", "40", name)


def down(args) -> int:
    # With the profile: its containers go too, if `up --observability` started them.
    return compose("--profile", OBSERVABILITY, "down", *args.rest).returncode


def status(_args) -> int:
    """One screen, as natively: containers and their health, queues, outboxes.
    Exit status 0 only if every container is as it should be."""
    found = containers()
    if not found:
        print("no containers: run scripts/stack up --docker")
        return 1
    all_ok = True
    print(f"{'process':<24} {'state':<10} health")
    for name, record in sorted(found.items()):
        wrong = problem(record)
        all_ok &= wrong is None
        label = "gateway (kong)" if name == "kong" else name
        print(f"{label:<24} {record['State']:<10} {wrong or 'ok'}")
    print()
    print_queues()
    print()
    print_outboxes()
    return 0 if all_ok else 1


def print_queues() -> None:
    listing = compose(
        "exec",
        "-T",
        "rabbitmq",
        "rabbitmqctl",
        "-q",
        "list_queues",
        "name",
        "messages_ready",
        "consumers",
        "--formatter",
        "json",
        capture=True,
    )
    print(f"{'queue':<28} {'ready':>7} {'consumers':>9}")
    if listing.returncode != 0:
        print(f"(RabbitMQ: {listing.stderr.strip() or 'not answering'})")
        return
    queues = {queue["name"]: queue for queue in json.loads(listing.stdout or "[]")}
    for name in QUEUES:
        queue = queues.get(name)
        if queue is None:
            print(f"{name:<28} (not declared yet)")
        else:
            print(f"{name:<28} {queue['messages_ready']:>7} {queue['consumers']:>9}")


def print_outboxes() -> None:
    print(f"{'outbox':<28} {'unsent':>7} {'oldest':>9}")
    for service in ("products", "orders"):
        # As the superuser over the container's local socket, which the image trusts.
        result = compose(
            "exec",
            "-T",
            "postgres",
            "psql",
            "-U",
            "postgres",
            "-d",
            service,
            "-AtF",
            " ",
            "-c",
            OUTBOX_SQL,
            capture=True,
        )
        if result.returncode != 0:
            print(f"{service:<28} (PostgreSQL: {result.stderr.strip() or 'not answering'})")
            continue
        unsent, age = result.stdout.split()
        print(f"{service:<28} {int(unsent):>7} {float(age):>8.1f}s")


def logs(args) -> int:
    names = service_names(args.names)
    if args.request_id:
        return story(names, args.request_id)
    return compose(
        "logs", "--no-color", "--tail", str(args.lines), *(["--follow"] if args.follow else []), *names
    ).returncode


def story(names: list[str], request_id: str) -> int:
    """Every line that names `request_id`, from every container, in time order."""
    # Each line reads "users-1  | 2026-12-01T10:00:00.123456789Z {...}".
    listing = compose("logs", "--no-color", "--timestamps", *names, capture=True).stdout.splitlines()
    found = []
    for line in listing:
        prefix, _, rest = line.partition("|")
        if request_id in rest:
            timestamp = rest.strip().split(" ", 1)[0]
            found.append((timestamp, prefix.strip(), rest.strip()))
    for _, name, line in sorted(found):
        print(f"{name:<24} {line}")
    if not found:
        print(f"no log line names request id {request_id}")
    return 0 if found else 1


def start(args) -> int:
    """Start stopped containers and wait until they are healthy."""
    return compose(
        "up",
        "--detach",
        "--wait",
        "--wait-timeout",
        str(WAIT_TIMEOUT),
        "--no-deps",
        "--no-build",
        "--no-recreate",
        *service_names(args.names),
    ).returncode


def stop(args) -> int:
    """Stop containers: SIGTERM, or SIGKILL with --kill to simulate a crash."""
    return compose("kill" if args.kill else "stop", *service_names(args.names)).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack --docker", description="Run the system with docker compose.")
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="build, start and wait until every container is healthy")
    up_parser.add_argument(
        "--observability", action="store_true", help="also Prometheus and Grafana (compose profile observability)"
    )
    up_parser.set_defaults(run=up)
    down_parser = commands.add_parser("down", help="stop and remove the containers (-v: the volumes too)")
    down_parser.set_defaults(run=down)
    commands.add_parser("status", help="containers, queues and outboxes").set_defaults(run=status)
    start_parser = commands.add_parser("start", help="start some containers and wait until healthy")
    start_parser.add_argument("names", nargs="+")
    start_parser.set_defaults(run=start)
    stop_parser = commands.add_parser("stop", help="stop some containers")
    stop_parser.add_argument("names", nargs="+")
    stop_parser.add_argument("--kill", action="store_true", help="SIGKILL, no chance to clean up (a crash)")
    stop_parser.set_defaults(run=stop)
    log_parser = commands.add_parser("logs", help="show the containers' logs")
    log_parser.add_argument("names", nargs="*", help="containers to show (default: all)")
    log_parser.add_argument("-f", "--follow", action="store_true")
    log_parser.add_argument("-n", "--lines", type=int, default=50)
    log_parser.add_argument("--request-id", help="the whole story of one request, across containers, in time order")
    log_parser.set_defaults(run=logs)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("up", "down"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest  # up and down pass anything else on to docker compose
    return args.run(args)


if __name__ == "__main__":
    # Like any Unix tool: when the reader of our output goes (`status | head`),
    # end quietly instead of with a BrokenPipeError. (Windows has no SIGPIPE.)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
