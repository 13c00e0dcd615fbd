"""The native stack's gateway: the host's Kong 3.9, as compose and Kubernetes run it.

The same kong.yml (rendered into var/kong.yml with the secret, each service
balanced over its copies' loopback ports) and the same settings (kong/kong.env),
with only what a host needs instead of a container: loopback listeners, a prefix
under var/, and nginx in the foreground so that supervisord watches it, as the
official image's `kong docker-start` does.
"""

import subprocess
import sys
from pathlib import Path

from kong import settings

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PREFIX = VAR / "kong"
CONFIG = VAR / "kong.yml"
STATUS_BIND = "127.0.0.1:8100"
ADMIN_URL = "http://127.0.0.1:8001"
# Where Kong's packages and image put OpenResty's nginx.
NGINX = "/usr/local/openresty/nginx/sbin/nginx"
# How supervisord starts Kong, as the official image's `kong docker-start` does:
# `kong prepare` writes nginx's config into the prefix, then nginx runs in the
# foreground. Before that, what a Kong that died (SIGKILL, OOM) left behind:
# its nginx workers, which go on holding the ports (nginx's workers don't die
# with their master; the old master's pid is their process group), and its
# sockets, which would stop nginx from binding them (`kong start` removes them too).
# supervisord runs one Kong at a time, so whatever is left is a dead run's.
START = (
    'old=$(cat "$KONG_PREFIX/pids/nginx.pid" 2>/dev/null) && pkill -KILL -g "$old" -x nginx; '
    'kong prepare -p "$KONG_PREFIX" && rm -f "$KONG_PREFIX"/sockets/* '
    f'&& exec {NGINX} -p "$KONG_PREFIX" -c nginx.conf'
)


def env(
    proxy_bind: str, status_bind: str = STATUS_BIND, prefix: Path = PREFIX, config: Path = CONFIG
) -> dict[str, str]:
    """kong/kong.env, with a host's listeners and paths (the stack's by default;
    tests/gateway runs Kongs of its own on other ports)."""
    return {
        **settings.load(),
        "KONG_PREFIX": str(prefix),
        "KONG_DECLARATIVE_CONFIG": str(config),
        "KONG_PROXY_LISTEN": proxy_bind,
        "KONG_STATUS_LISTEN": status_bind,
        "KONG_NGINX_DAEMON": "off",
    }


def argv() -> list[str]:
    return ["/bin/sh", "-c", START]


def health_url() -> str:
    """Ready once its config is loaded and it proxies (the status API's readiness)."""
    return f"http://{STATUS_BIND}/status/ready"


def metrics_bind() -> str:
    """Where Prometheus scrapes Kong (the prometheus plugin on the status API)."""
    return STATUS_BIND


def render(secrets_env: dict, upstreams: dict[str, list[str]], environ: dict) -> bool:
    """Render kong.yml into var/kong.yml and have Kong check it; True if it changed."""
    before = CONFIG.read_bytes() if CONFIG.exists() else b""
    targets = [f"--upstream={service}={','.join(addresses)}" for service, addresses in upstreams.items()]
    result = subprocess.run(
        [sys.executable, "-m", "kong", "render", "--config", str(ROOT / "kong.yml"), "--out", str(CONFIG), *targets],
        cwd=ROOT,
        env={**environ, **secrets_env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"rendering kong.yml failed:\n{result.stderr.strip()}")
    if CONFIG.read_bytes() == before:
        return False
    check = subprocess.run(
        ["kong", "config", "parse", str(CONFIG)], env={**environ, **settings.load()}, capture_output=True, text=True
    )
    if check.returncode != 0:
        sys.exit(f"Kong refuses the rendered kong.yml:\n{check.stdout}{check.stderr}")
    return True
