"""The gateway's configuration: kong.yml, the one source of truth for routing and auth.

Two consumers read it. Real Kong (docker-compose.yml) gets a rendered copy with the
secret filled in (``python -m kong render``); hosts without Docker run HAProxy with
a config generated from it (``python -m kong haproxy``), which refuses anything in
kong.yml that it cannot translate faithfully.
"""

from kong.config import load, render, write_private_file, write_rendered
from kong.errors import ConfigError
from kong.haproxy import generate_haproxy_config

__all__ = [
    "ConfigError",
    "generate_haproxy_config",
    "load",
    "render",
    "write_private_file",
    "write_rendered",
]
