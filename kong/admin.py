"""python -m kong.admin PATH: read one path of Kong's Admin API and print it.

Kong's Admin API is not read-only in DB-less mode (POST /config replaces the whole
configuration, GET /config shows the jwt secret), and the services trust the
X-User-Id Kong sets: whoever reaches it is every user. So under compose it
listens on the Kong container's own loopback, and an operator reaches it on
purpose, from a container that shares Kong's network namespace:

    docker compose run --rm kong-admin /routes        # also /services, /plugins, /consumers, /status
    docker compose run --rm -e KONG_ADMIN_URL=http://127.0.0.1:8100 kong-admin /metrics   # status API

This only ever GETs: Kong's configuration changes by editing kong.yml, never by
writing to the Admin API.
"""

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8001"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith("/"):
        print("usage: python -m kong.admin /PATH   (e.g. /routes)", file=sys.stderr)
        return 2
    base = os.environ.get("KONG_ADMIN_URL", DEFAULT_URL).rstrip("/")
    if not base.startswith("http://"):
        print(f"KONG_ADMIN_URL must be an http:// URL, not {base!r}", file=sys.stderr)
        return 2
    if argv[0].startswith("/config"):
        print("note: the answer holds the jwt secret; don't paste it anywhere", file=sys.stderr)
    try:
        with urllib.request.urlopen(base + argv[0], timeout=5) as response:  # nosec B310 - http:// checked above
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # Kong answered, with an error: show it
        print(f"{exc.code}: {exc.read().decode('utf-8', 'replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"nothing answers at {base} ({exc}); is this sharing Kong's network namespace?", file=sys.stderr)
        return 1
    try:
        print(json.dumps(json.loads(body), indent=2))
    except ValueError:  # /metrics is Prometheus text
        print(body, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
