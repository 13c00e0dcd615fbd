"""The gateway's configuration: kong.yml (routing and auth) and kong.env (Kong's
own settings), the one source of truth for every way the system runs.

Kong reads a rendered copy of kong.yml, with the secret filled in (``python -m
kong render``); compose, Kubernetes and the native stack all run that same Kong
3.9.3 with the settings in kong.env. ``python -m kong.admin`` reads its Admin API.
"""

from kong.config import load, render, with_upstreams, write_private_file, write_rendered
from kong.errors import ConfigError

__all__ = [
    "ConfigError",
    "load",
    "render",
    "with_upstreams",
    "write_private_file",
    "write_rendered",
]
