"""What nginx under Kong does to every request before and around the plugins,
as HAProxy 2.6 rules: the request's size limits, the forwarded headers, the
normalised path, and buffering the body before a service sees any of it.

Sources, Kong 3.9.3: kong/templates/nginx_kong.lua (proxy_request_buffering on,
the proxy_set_header lines, the error pages), kong/runloop/handler.lua (what the
X-Forwarded-* headers are, for a client Kong doesn't trust), kong/router/utils.lua
and kong/tools/uri.lua (the path the router matches and the service receives).
"""

from kong.model import SizeLimit
from kong.syntax import is_, literal, reply

# nginx's large_client_header_buffers 4 8k: a request line or a header line must
# fit one 8 KiB buffer (else 414, or 494, which Kong's error handler answers as
# 400 "Request header or cookie too large"), and all of them four.
LINE_LIMIT = 8192
HEADERS_LIMIT = 4 * LINE_LIMIT
URI_TOO_LONG = "URI too long"  # kong/error_handlers.lua
HEADERS_TOO_LARGE = "Request header or cookie too large"
BAD_REQUEST = "Bad request"

# HAProxy holds a request in one buffer (tune.bufsize) and keeps tune.maxrewrite
# of it free for the headers its rules add: the copies of Host and of the path
# (at most a line each, by the limits above) and a few short ones (request id,
# forwarded-for, consumer). A rule that finds no room fails the request with 500.
REWRITE_ROOM = 2 * LINE_LIMIT + 2048
# What HAProxy's internal (HTX) framing of headers and chunks takes beyond their bytes.
FRAMING_ROOM = 8192

# How long a client may take: for its request line and headers (HAProxy's own
# timeout http-request, whose 408 is the early HTML one), then as long again for
# its body (a JSON 408 from wait-for-body).
HEADERS_TIMEOUT = "10s"
BODY_TIMEOUT = "10s"

# An absolute-form request line without a host ("GET http:///orders") or with
# user info ("http://user@host/"): nginx answers 400; HAProxy 2.6 would pass it
# on and then fail to give the URI the upstream's authority, a 500.
NO_AUTHORITY = r"^[A-Za-z][A-Za-z0-9+.-]*://([/?#]|$|[^/?#]*@)"


def buffer_settings(limit: SizeLimit) -> list[str]:
    """global lines: one buffer holds any request the limits let through, its
    whole body included, with room left for the gateway's own headers."""
    size = HEADERS_LIMIT + limit.allowed_bytes + FRAMING_ROOM + REWRITE_ROOM
    return [
        "# A request's line, headers and whole body in one buffer (kong.yml's request-size-limiting",
        "# and nginx's header limits), and room beside them for the headers the gateway adds.",
        f"tune.bufsize {size}",
        f"tune.maxrewrite {REWRITE_ROOM}",
        "# http-request normalize-uri is marked experimental in HAProxy 2.6.",
        "expose-experimental-directives",
    ]


def request_limits() -> list[str]:
    """What nginx refuses before Kong runs, checked before any rule adds a header."""
    long_line = f"(?m)^[^\\r\\n]{{{LINE_LIMIT + 1}}}"
    return [
        "# nginx's limits under Kong (large_client_header_buffers 4 8k), answered as Kong does",
        reply(400, BAD_REQUEST, is_(f"url -m reg {literal(NO_AUTHORITY)}")),
        reply(414, URI_TOO_LONG, is_(f"url,length gt {LINE_LIMIT}")),
        reply(400, HEADERS_TOO_LARGE, is_(f"req.hdrs -m reg {literal(long_line)}")),
        reply(400, HEADERS_TOO_LARGE, is_(f"req.hdrs,length gt {HEADERS_LIMIT}")),
    ]


def forwarded_headers() -> list[str]:
    """The headers Kong sets for a client it doesn't trust (kong/runloop/handler.lua,
    the proxy_set_header lines of nginx_kong.lua), whatever the client sent.
    ("option forwardfor" in the frontend appends the client's address, as Kong does.)"""
    return [
        "# Kong, trusting no proxy in front of it, sets these itself whatever the client sent:",
        "# its own scheme, $host (lower case, no port), port and the path as requested.",
        "http-request set-header X-Forwarded-Proto http",
        "http-request set-header X-Forwarded-Host %[req.hdr(host),lower,regsub(:[0-9]*$,)]",
        "http-request set-header X-Forwarded-Port %[dst_port]",
        "http-request set-header X-Forwarded-Path %[path]",
        "http-request set-header X-Real-IP %[src]",
        "# Kong sends X-Forwarded-Prefix only for a route that strips its path (none here):",
        "# nginx drops the client's then.",
        "http-request del-header X-Forwarded-Prefix",
        "# Kong passes these on; nothing here reads them (Gunicorn takes the scheme from",
        "# X-Forwarded-Proto only), and the stand-in drops them: stricter, never laxer.",
        "http-request del-header Forwarded",
        "http-request del-header X-Forwarded-Ssl",
        "http-request del-header X-Forwarded-Protocol",
        "# nginx under Kong drops header names with underscores; so must we, or",
        "# X_User_Id would reach a WSGI app as the same HTTP_X_USER_ID as X-User-Id.",
        "http-request del-header _ -m sub",
    ]


def normalized_path() -> list[str]:
    """Kong's router matches, and the service receives, the normalised path
    (kong/router/utils.lua strip_uri_args -> kong/tools/uri.lua normalize): %XX of
    unreserved characters decoded, the others' hex in capitals, repeated slashes
    merged, dot segments removed, .. above the root too. Slashes are merged first,
    as Kong does in the same pass as the dots ("/a//../b" is "/b")."""
    return [
        "# Kong's path normalisation, before routing, on every route",
        "http-request normalize-uri percent-decode-unreserved",
        "http-request normalize-uri percent-to-uppercase",
        "http-request normalize-uri path-merge-slashes",
        "http-request normalize-uri path-strip-dot",
        "http-request normalize-uri path-strip-dotdot full",
    ]


def buffered_body() -> list[str]:
    """nginx under Kong reads a request's whole body before it contacts the
    service (proxy_request_buffering on), so a client trickling a body ties up
    nothing but its own connection. A body that isn't complete in time is a 408."""
    return [
        f"# proxy_request_buffering on: the whole body, within {BODY_TIMEOUT}, before the service is contacted",
        f"http-request wait-for-body time {BODY_TIMEOUT}",
        "# nginx answers Expect itself and doesn't pass it on (nor would Gunicorn take any other value).",
        "http-request del-header Expect",
    ]


def chunked() -> str:
    """The condition for a chunked body (HAProxy drops a Content-Length beside it)."""
    return is_("req.hdr(transfer-encoding) -m found")
