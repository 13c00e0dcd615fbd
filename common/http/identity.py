"""Who is calling, as the gateway says.

The gateway verifies the JWT and passes its `sub` as X-User-Id, after deleting any
X-User-Id the client sent. Services trust the header only because nothing but the
gateway can reach them (they listen on loopback natively, and publish no ports in
docker-compose). They never verify tokens themselves.
"""

from flask import request
from flask_smorest import abort

from common.fields import MAX_ID


def current_user_id() -> int:
    raw = request.headers.get("X-User-Id", "")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        # Only reachable if a protected route was left without the jwt plugin.
        abort(401, message="Authentication required.")
    return int(raw)
