"""The bench's set-up: the stack checked, its databases vacuumed, bench users
signed up and logged in, products seeded, and how many users do what."""

import shutil
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

from bench_load import KINDS, ROOT, Http, die

MAX_STOCK = 2**31 - 1
DEFAULT_USERS = 48


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
