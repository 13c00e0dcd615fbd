"""Generating an HAProxy 2.6 config from kong.yml, for hosts without Docker.

There HAProxy stands in for Kong, so it must answer as Kong would: the same
routes, the same 401s from the jwt plugin with the same bodies, the same 404 for
anything unrouted, and JSON for every error it makes itself. model.py decides
what can be translated; this module writes the HAProxy rules for it.

The output holds the jwt secrets (base64-encoded, which hides nothing): write it
with config.write_private_file, never print it.
"""

import base64
import ipaddress
import re
from collections.abc import Mapping
from itertools import combinations

from kong import edge
from kong.bearer import bearer_contract
from kong.errors import ConfigError
from kong.model import (
    CorrelationId,
    Credential,
    Gateway,
    JwtAuth,
    RateLimit,
    ResponseHeaders,
    Route,
    Service,
    SizeLimit,
    parse,
)
from kong.syntax import (
    INVALID_TOKEN,
    JSON,
    is_,
    literal,
    log_format,
    message,
    not_,
    quoted,
    section,
    unauthorized,
    words,
)

DEFAULT_BIND = "0.0.0.0:8000"  # Kong's proxy_listen
DEFAULT_METRICS_BIND = "127.0.0.1:8405"  # HAProxy's customary exporter port
METRICS_PATH = "/metrics"
HEADER = "# generated from kong.yml by python -m kong — do not edit (edit kong.yml and regenerate)"

# Bodies of the errors HAProxy makes itself, in Kong's words where Kong has some
# (kong/error_handlers.lua), so clients see the same whichever gateway answers.
ERROR_MESSAGES = {
    400: "Bad request",
    403: "Forbidden",
    405: "Method not allowed",
    408: "Request timeout",
    410: "Gone",
    413: "Payload too large",
    425: "Too early",
    429: "Too many requests",
    500: "An unexpected error occurred",
    501: "Not implemented",
    502: "An invalid response was received from the upstream server",
    503: "The upstream server is currently unavailable",
    504: "The upstream server is timing out",
}
NO_ROUTE = "no Route matched with those values"

# The algorithms Kong's jwt_parser knows: a token naming any other ("none",
# typically) fails to decode there, before its credential is even looked up.
KONG_JWT_ALGORITHMS = (
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)
INTEGER = r"^-?[0-9]+$"
# claims_to_verify: claim -> (Kong's error, the test on `claim - now` that fails it)
CLAIM_CHECKS = {
    "exp": ("token expired", "-m int le 0"),
    "nbf": ("token not valid yet", "-m int gt 0"),
}

ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")

# correlation-id: a client's request id is kept only if it is one header of these
# characters, which can't break a log line or smuggle anything into one.
REQUEST_ID = r"^[A-Za-z0-9._-]{1,128}$"

# request-size-limiting
TOO_LARGE = "Request size limit exceeded"
LENGTH_REQUIRED = "A valid Content-Length header is required"

# rate-limiting: Kong's headers (kong/plugins/rate-limiting/handler.lua)
RATE_LIMIT_HEADERS = (
    ("X-RateLimit-Limit-Minute", "txn.rate_limit_limit"),
    ("X-RateLimit-Remaining-Minute", "txn.rate_limit_remaining"),
    ("RateLimit-Limit", "txn.rate_limit_limit"),
    ("RateLimit-Remaining", "txn.rate_limit_remaining"),
    ("RateLimit-Reset", "txn.rate_limit_reset"),
)

# What Kong's jwt plugin tells a service about the consumer it authenticated.
IDENTITY_HEADERS = (
    "X-Consumer-ID",
    "X-Consumer-Custom-ID",
    "X-Consumer-Username",
    "X-Credential-Identifier",
    "X-Anonymous-Consumer",
)

# httplog's fields without captured headers (Authorization must never be logged)
# and without the query string (tokens and personal data end up in those too).
LOG_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq "
    'route=%[var(txn.route)] request_id=%[var(txn.request_id)] "%HM %HPO %HV"'
)


def generate_haproxy_config(
    config: Mapping,
    upstreams: Mapping[str, str],
    *,
    bind: str = DEFAULT_BIND,
    metrics_bind: str = DEFAULT_METRICS_BIND,
    pidfile: str | None = None,
    stats_socket: str | None = None,
) -> str:
    """The text of a complete haproxy.cfg enforcing a rendered kong.yml.

    `upstreams` maps every Kong service name to the "host:port" it really runs on
    (kong.yml's urls are Docker DNS names), or to several, comma-separated, for
    copies of it that share its requests (the native stack's --scale). `metrics_bind` is where the metrics
    are served if kong.yml has the prometheus plugin: a loopback address. Raises
    ConfigError for anything that can't be translated.
    """
    gateway = parse(config)
    _check_upstreams(gateway, upstreams)
    _check_address(bind, "bind address")
    _check_loopback(metrics_bind, "metrics address")
    rate_limits = _rate_limits(gateway)
    _check_table_names(gateway, rate_limits)
    sections = [
        _global(gateway, pidfile, stats_socket),
        _defaults(),
        _frontend(gateway, bind, rate_limits),
        *(_backend(service, upstreams[service.name]) for service in gateway.services),
        *(_rate_limit_table(table, limit) for limit, (table, _) in rate_limits.items()),
    ]
    if gateway.metrics:
        sections.append(_metrics_frontend(metrics_bind))
    return "\n\n".join([HEADER, *sections]) + "\n"


def _check_upstreams(gateway: Gateway, upstreams: Mapping[str, str]) -> None:
    names = [service.name for service in gateway.services]
    for name in upstreams:
        if name not in names:
            raise ConfigError(f"upstream given for {name!r}, which is not a service in kong.yml")
    for name in names:
        if name not in upstreams:
            raise ConfigError(f"service {name!r} has no upstream address (give one as {name}=HOST:PORT)")
        for address in upstreams[name].split(","):
            _check_address(address, f"upstream address of {name!r}")


def _check_address(address: str, what: str) -> None:
    match = ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT, got {address!r}")


def _check_loopback(address: str, what: str) -> None:
    """Metrics name every route and service: they are for this host only, as
    Kong's Admin API (published on loopback) is."""
    _check_address(address, what)
    host = ADDRESS.fullmatch(address)["host"].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        loopback = False
    if not loopback:
        raise ConfigError(f"{what}: must be a loopback address such as 127.0.0.1:8405, got {address!r}")


def _check_table_names(gateway: Gateway, rate_limits: dict[RateLimit, tuple[str, list[Route]]]) -> None:
    services = {service.name for service in gateway.services}
    for table, _ in rate_limits.values():
        if table in services:  # both would be backends of the same name
            raise ConfigError(f"service name {table!r} is taken by the generator for rate-limiting counters")


# -- sections -------------------------------------------------------------------------


def _global(gateway: Gateway, pidfile: str | None, stats_socket: str | None) -> str:
    lines = ["log stdout format raw local0", "maxconn 4096"]
    if pidfile:
        lines.append(f"pidfile {literal(pidfile)}")
    if stats_socket:
        lines.append(f"stats socket {literal(stats_socket)} mode 600 level user")
    lines += edge.buffer_settings(gateway.size_limit)
    if gateway.credentials:
        lines.append("# jwt_secrets, base64 so that no character of a secret can break the quoting")
    for number, credential in enumerate(gateway.credentials, 1):
        # Decoded once, at startup, into a variable jwt_verify reads.
        encoded = base64.b64encode(credential.secret.encode()).decode()
        lines.append(f"set-var {_secret_var(number)} str({encoded}),b64dec")
    return section("global", lines)


def _defaults() -> str:
    lines = [
        "mode http",
        "log global",
        f"log-format {quoted(LOG_FORMAT)}",
        "option dontlognull",
        "http-reuse safe",
        "timeout connect 2s",
        "timeout client 30s",
        "timeout server 30s",
        f"timeout http-request {edge.HEADERS_TIMEOUT}",
        "timeout http-keep-alive 10s",
        "timeout queue 5s",
        "timeout check 2s",
        "retries 2",
        "default-server inter 2s fall 3 rise 2",
        "# Errors HAProxy makes itself are JSON, as Kong's are: never an HTML page.",
    ]
    for status, text in ERROR_MESSAGES.items():
        body = quoted(message(text))
        lines.append(f"http-error status {status} content-type {quoted(JSON)} string {body}")
    return section("defaults", lines)


def _frontend(gateway: Gateway, bind: str, rate_limits: dict[RateLimit, tuple[str, list[Route]]]) -> str:
    lines = [
        # Kong's proxy_listen without "http2" speaks HTTP/1.x only, where a body
        # comes with a Content-Length or chunked; HAProxy would otherwise take
        # HTTP/2 as well (from its preface), whose bodies need neither.
        f"bind {bind} proto h1",
        "option forwardfor",
        "",
    ]
    # Kong runs its plugins by priority: pre-function 1000000, jwt 1450,
    # request-size-limiting 951, rate-limiting 910, correlation-id 1, post-function
    # -1000. The request id is settled first here all the same: where another
    # plugin (or nginx, or the router) answers before correlation-id's turn, Kong's
    # header_filter echoes the client's id or a new one, which is what this does.
    if gateway.correlation_id:
        lines += [*_correlation_id(gateway.correlation_id), ""]
    # Then what nginx does before Kong's router, limits first: no header is added
    # before a request is known to leave room for it.
    lines += [*edge.request_limits(), "", *edge.forwarded_headers(), "", *edge.normalized_path(), ""]
    lines += _routing(gateway.routes)
    if gateway.bearer_contract:
        lines += ["", *bearer_contract()]
    for number, (jwt, routes) in enumerate(_routes_by_jwt(gateway.routes).items(), 1):
        lines += ["", *_jwt(f"jwt{number}", jwt, routes, gateway.credentials)]
    lines += ["", *_size_limit(gateway.size_limit)]
    for number, (limit, (table, routes)) in enumerate(rate_limits.items(), 1):
        lines += ["", *_rate_limit(f"rate_limit{number}", table, limit, routes)]
    if gateway.user_id_from_sub:
        lines += ["", *_user_id_from_sub()]
    lines += ["", *edge.buffered_body()]
    responses = _response_headers(gateway, rate_limits)
    if responses:
        lines += ["", *responses]
    lines.append("")
    for service in gateway.services:
        names = [route.name for route in gateway.routes if route.service == service.name]
        if names:
            lines.append(f"use_backend {service.name} if {is_(f'var(txn.route) -m str {words(names)}')}")
    return section("frontend gateway", lines)


def _backend(service: Service, addresses: str) -> str:
    servers = addresses.split(",")
    lines = [
        f"# kong.yml: {service.url}",
        "option httpchk GET /healthz",
        "http-check expect status 200",
        "# Kong's preserve_host defaults to false: the upstream sees its own address as Host.",
        f"http-request set-header Host {servers[0]}",
    ]
    if len(servers) == 1:
        lines.append(f"server {service.name} {servers[0]} check")
    else:
        # Copies of one service: round robin, as Kong balances an upstream's targets.
        lines += [f"server {service.name}-{number} {address} check" for number, address in enumerate(servers, 1)]
    return section(f"backend {service.name}", lines)


# -- routing --------------------------------------------------------------------------


def _routing(routes: tuple[Route, ...]) -> list[str]:
    lines = [
        "# Routes in kong.yml order; the first match wins. As in Kong, ~ paths are",
        "# regexes matched from the start of the path, the others prefixes.",
    ]
    unrouted = not_("var(txn.route) -m found")
    for number, route in enumerate(routes, 1):
        lines.append(f"# route {route.name} -> service {route.service}")
        conditions = [unrouted]
        for path in route.paths:  # an acl declared several times matches if any line does
            match = "reg" if path.is_regex else "beg"
            lines.append(f"acl route{number}_path path -m {match} {literal(path.pattern)}")
        if route.paths:
            conditions.append(f"route{number}_path")
        if route.methods:
            lines.append(f"acl route{number}_method method {words(route.methods)}")
            conditions.append(f"route{number}_method")
        lines.append(f"http-request set-var(txn.route) str({route.name}) if {' '.join(conditions)}")
    lines += [
        "# Kong answers 404 both when no path matches and when only the method doesn't.",
        f"http-request return status 404 content-type {quoted(JSON)} string {quoted(message(NO_ROUTE))} if {unrouted}",
    ]
    return lines


def _routes_by_jwt(routes: tuple[Route, ...]) -> dict[JwtAuth, list[Route]]:
    groups: dict[JwtAuth, list[Route]] = {}
    for route in routes:
        if route.jwt is not None:
            groups.setdefault(route.jwt, []).append(route)
    return groups


# -- the jwt plugin -------------------------------------------------------------------


def _jwt(on: str, jwt: JwtAuth, routes: list[Route], credentials: tuple[Credential, ...]) -> list[str]:
    """Kong's jwt plugin (kong/plugins/jwt/handler.lua): its checks, in its order.

    Every failure returns at once, so the first failing check decides the answer,
    as in Kong. `on` names the acl for the routes this jwt config applies to.
    """
    claim = jwt.key_claim_name
    names = [route.name for route in routes]
    lines = [
        f"# jwt plugin (claims_to_verify [{', '.join(jwt.claims_to_verify)}], "
        f"maximum_expiration {jwt.maximum_expiration}) on routes {', '.join(names)}",
        f"acl {on} var(txn.route) -m str {words(names)}",
        # From the Authorization header only (uri_param_names and cookie_names are []),
        # as the bearer token contract has read it: one well-formed compact JWS.
        f"http-request set-var(txn.jwt) var(txn.bearer) if {on}",
        unauthorized("Unauthorized", on, not_("var(txn.jwt) -m found"), challenge="Bearer"),
        f"http-request set-var(txn.jwt_alg) var(txn.jwt),jwt_header_query('$.alg') if {on}",
        unauthorized("Bad token; invalid alg", on, not_(f"var(txn.jwt_alg) -m str {words(KONG_JWT_ALGORITHMS)}")),
        # The claim naming the credential, from the payload or else the header.
        f"http-request set-var(txn.jwt_key) var(txn.jwt),jwt_payload_query('$.{claim}') if {on}",
        f"http-request set-var(txn.jwt_key) var(txn.jwt),jwt_header_query('$.{claim}') "
        f"if {on} {not_('var(txn.jwt_key) -m found')}",
        unauthorized(f"No mandatory '{claim}' in claims", on, not_("var(txn.jwt_key) -m found")),
        unauthorized(f"Invalid '{claim}' in claims", on, is_("var(txn.jwt_key) -m len 0")),
    ]
    keys = words(literal(credential.key) for credential in credentials)
    unknown_key = [not_(f"var(txn.jwt_key) -m str -- {keys}")] if credentials else []
    lines.append(unauthorized(f"No credentials found for given '{claim}'", on, *unknown_key))
    for number, credential in enumerate(credentials, 1):
        this_key = is_(f"var(txn.jwt_key) -m str -- {literal(credential.key)}")
        # jwt_verify answers 1 for a good signature, 0 or less for anything else.
        signed = f"var(txn.jwt),jwt_verify({credential.algorithm},{_secret_var(number)}) -m int 1"
        lines += [
            unauthorized("Invalid algorithm", on, this_key, not_(f"var(txn.jwt_alg) -m str {credential.algorithm}")),
            unauthorized("Invalid signature", on, this_key, not_(signed)),
            f"http-request set-var(txn.jwt_consumer) str({credential.consumer}) if {on} {this_key}",
        ]
    lines += _jwt_claims(on, jwt)
    lines += [
        # Authenticated: the headers Kong's set_consumer() leaves. It also sets
        # X-Consumer-ID, a UUID only Kong knows: drop whatever the client sent.
        f"http-request set-header X-Consumer-Username %[var(txn.jwt_consumer)] if {on}",
        f"http-request set-header X-Credential-Identifier %[var(txn.jwt_key)] if {on}",
        f"http-request del-header X-Consumer-ID if {on}",
        f"http-request del-header X-Consumer-Custom-ID if {on}",
        f"http-request del-header X-Anonymous-Consumer if {on}",
        # Kong's kong.ctx.shared.authenticated_jwt_token, for the post-function.
        f"http-request set-var(txn.authenticated_jwt_token) var(txn.jwt) if {on}",
    ]
    return lines


def _jwt_claims(on: str, jwt: JwtAuth) -> list[str]:
    """claims_to_verify, then maximum_expiration (kong/plugins/jwt/jwt_parser.lua).

    Kong reports all failing claims at once ({"exp": ..., "nbf": ...}), so each
    check only records its error in txn.jwt_<claim>_error; then one return for
    each set of failing claims answers with all of them.
    """
    claims = jwt.claims_to_verify
    if not claims:
        return []
    lines = [f"http-request set-var(txn.jwt_now) date() if {on}"]
    for claim in claims:
        error, failing = CLAIM_CHECKS[claim]
        value = f"txn.jwt_{claim}"
        lines += [
            # With 'int' json_query still passes strings through: keep integers only.
            f"http-request set-var({value}) var(txn.jwt),jwt_payload_query('$.{claim}','int') if {on}",
            f"http-request unset-var({value}) if {on} {not_(f'var({value}) -m reg {literal(INTEGER)}')}",
            f"http-request set-var-fmt({value}_error) {quoted('must be a number')} "
            f"if {on} {not_(f'var({value}) -m found')}",
            f"http-request set-var-fmt({value}_error) {quoted(error)} "
            f"if {on} {is_(f'var({value}),sub(txn.jwt_now) {failing}')}",
        ]
    for size in range(len(claims), 0, -1):
        for failed in combinations(claims, size):
            body = "{" + ",".join(f'"{claim}":"%[var(txn.jwt_{claim}_error)]"' for claim in failed) + "}"
            conditions = [
                is_(f"var(txn.jwt_{claim}_error) -m found")
                if claim in failed
                else not_(f"var(txn.jwt_{claim}_error) -m found")
                for claim in claims
            ]
            lines.append(
                f"http-request return status 401 content-type {quoted(JSON)} "
                f"hdr WWW-Authenticate {quoted(INVALID_TOKEN)} "
                f"lf-string {quoted(body)} if {on} {' '.join(conditions)}"
            )
    if jwt.maximum_expiration:
        too_long = is_(f"var(txn.jwt_exp),sub(txn.jwt_now) -m int gt {jwt.maximum_expiration}")
        lines.append(unauthorized({"exp": "exceeds maximum allowed expiration"}, on, too_long))
    return lines


# -- correlation-id -------------------------------------------------------------------


def _correlation_id(correlation: CorrelationId) -> list[str]:
    """Kong's correlation-id with the uuid generator, for the request.

    Kong passes on any non-empty value a client sent, verbatim; this keeps only
    one that matches REQUEST_ID (the id is logged, so it mustn't carry line breaks
    or anything else into the logs) and replaces any other with a fresh uuid.
    """
    header = correlation.header_name
    kept = f"{is_(f'req.fhdr_cnt({header}) -m int eq 1')} {is_(f'req.fhdr({header}) -m reg {literal(REQUEST_ID)}')}"
    return [
        f"# correlation-id: {header}, the client's if it is one plain token, else a uuid",
        f"http-request set-header {header} %[uuid()] unless {kept}",
        f"http-request set-var(txn.request_id) req.fhdr({header})",
    ]


# -- request-size-limiting ------------------------------------------------------------


def _size_limit(limit: SizeLimit) -> list[str]:
    """Kong's request-size-limiting (kong/plugins/request-size-limiting/handler.lua).

    A declared Content-Length is checked at once. A chunked body declares no
    size: Kong reads it whole and measures it, and so does this. HAProxy's buffer
    holds a whole body of the limit beside the largest headers allowed
    (edge.buffer_settings), so what it measures is either the whole body or,
    when the buffer filled up, already more than the limit: exact either way.
    """
    allowed = limit.allowed_bytes
    lines = [
        f"# request-size-limiting: at most {allowed} bytes",
        *_too_large(is_(f"req.hdr_val(content-length) gt {allowed}")),
    ]
    if limit.require_content_length:
        lines.append(
            f"http-request return status 411 content-type {quoted(JSON)} string {quoted(message(LENGTH_REQUIRED))} "
            f"if {not_('req.hdr(content-length) -m found')} {not_('req.hdr(transfer-encoding) -m str chunked')}"
        )
    lines += [
        # A client that stops sending gets a 408 here, not a pass.
        f"http-request wait-for-body time {edge.BODY_TIMEOUT} if {edge.chunked()}",
        *_too_large(edge.chunked(), is_(f"req.body_size gt {allowed}")),
    ]
    return lines


def _too_large(*conditions: str) -> list[str]:
    """Kong's refusal: 417 if the client is waiting for a 100 Continue, else 413."""
    reply = f"content-type {quoted(JSON)} string {quoted(message(TOO_LARGE))}"
    expects = is_("req.hdr(expect) -m str -i 100-continue")
    return [
        f"http-request return status 417 {reply} if {' '.join(conditions)} {expects}",
        f"http-request return status 413 {reply} if {' '.join(conditions)}",
    ]


# -- rate-limiting --------------------------------------------------------------------


def _rate_limits(gateway: Gateway) -> dict[RateLimit, tuple[str, list[Route]]]:
    """Each rate-limiting config: the stick table counting for it, and its routes."""
    groups: dict[RateLimit, tuple[str, list[Route]]] = {}
    for route in gateway.routes:
        if route.rate_limit is not None:
            table = f"rate_limit_{len(groups) + 1}"
            groups.setdefault(route.rate_limit, (table, []))[1].append(route)
    return groups


def _rate_limit(on: str, table: str, limit: RateLimit, routes: list[Route]) -> list[str]:
    """Kong's rate-limiting, limit_by ip, policy local, per minute.

    Kong counts each client address's requests per clock minute and refuses
    once this minute's count reaches the limit; refused requests don't count.
    In the stick table, gpt0 holds the minute that gpc0 is counting for: a
    request in a later minute starts the count afresh.
    """
    names = [route.name for route in routes]
    exceeded = is_(f"var(txn.rate_limit_used) -m int ge {limit.minute}")
    lines = [
        f"# rate-limiting ({limit.scope}: minute {limit.minute}, limit_by ip, policy local) "
        f"on routes {', '.join(names)}",
        f"acl {on} var(txn.route) -m str {words(names)}",
        f"http-request track-sc0 src table {table} if {on}",
        f"http-request set-var(txn.rate_limit_now) date() if {on}",
        f"http-request set-var(txn.rate_limit_minute) var(txn.rate_limit_now),div(60) if {on}",
        f"http-request set-var(txn.rate_limit_stale) sc_clr_gpc0(0) "
        f"if {on} {not_('sc_get_gpt0(0),sub(txn.rate_limit_minute) -m int eq 0')}",
        f"http-request sc-set-gpt0(0) var(txn.rate_limit_minute) if {on}",
        f"http-request set-var(txn.rate_limit_used) sc_get_gpc0(0) if {on}",
        # Seconds until the minute is over: Kong's RateLimit-Reset and Retry-After.
        f"http-request set-var(txn.rate_limit_reset) var(txn.rate_limit_now),mod(60),neg,add(60) if {on}",
        f"http-request set-var(txn.rate_limit_remaining) int({limit.minute - 1}),sub(txn.rate_limit_used) if {on}",
        f"http-request set-var(txn.rate_limit_remaining) int(0) if {on} {exceeded}",
    ]
    if not limit.hide_client_headers:
        lines.append(f"http-request set-var(txn.rate_limit_limit) int({limit.minute}) if {on}")
    lines += [
        f"http-request return status {limit.error_code} content-type {quoted(JSON)} "
        f"hdr Retry-After %[var(txn.rate_limit_reset)] "
        f"string {quoted(message(limit.error_message))} if {on} {exceeded}",
        f"http-request sc-inc-gpc0(0) if {on}",
    ]
    return lines


def _rate_limit_table(table: str, limit: RateLimit) -> str:
    lines = [
        f"# rate-limiting counters ({limit.scope}), by client address (IPv4 ones stored as IPv6)",
        # An entry idle for a minute counts for a minute that is over anyway.
        "stick-table type ipv6 size 100k expire 60s store gpc0,gpt0",
    ]
    return section(f"backend {table}", lines)


# -- the global post-function ---------------------------------------------------------


def _user_id_from_sub() -> list[str]:
    """The HAProxy rules for lua.KNOWN_POST_FUNCTION_LUA: keep the two in step."""
    unauthenticated = not_("var(txn.authenticated_jwt_token) -m found")
    return [
        "# global post-function: X-User-Id is the verified token's sub, or absent; a request",
        "# no jwt plugin authenticated carries none of the jwt plugin's consumer headers either.",
        "http-request del-header X-User-Id",
        "http-request set-var(txn.jwt_sub) var(txn.authenticated_jwt_token),jwt_payload_query('$.sub','int')",
        f"http-request set-header X-User-Id %[var(txn.jwt_sub)] if {is_('var(txn.jwt_sub) -m found')}",
        *(f"http-request del-header {name} if {unauthenticated}" for name in IDENTITY_HEADERS),
    ]


# -- responses ------------------------------------------------------------------------


def _response_headers(gateway: Gateway, rate_limits: dict[RateLimit, tuple[str, list[Route]]]) -> list[str]:
    """Headers Kong's plugins set on responses, in Kong's order. http-after-response
    rules apply to HAProxy's own answers (401, 404, 413, 429 ...) as well, as Kong's
    header_filter runs on its own."""
    lines = []
    if any(not limit.hide_client_headers for limit in rate_limits):
        lines.append("# rate-limiting's headers, where a limit applied")
        for header, var in RATE_LIMIT_HEADERS:
            lines.append(
                f"http-after-response set-header {header} %[var({var})] if {is_('var(txn.rate_limit_limit) -m found')}"
            )
    correlation = gateway.correlation_id
    if correlation and correlation.echo_downstream:
        header = correlation.header_name
        # A request that never got an id (HAProxy refused it before its rules ran)
        # gets one now, as Kong's header_filter makes one up then.
        lines += [
            "# correlation-id: echo_downstream",
            f"http-after-response set-header {header} %[var(txn.request_id)] if {is_('var(txn.request_id) -m found')}",
            f"http-after-response set-header {header} %[uuid()] unless {is_('var(txn.request_id) -m found')}",
        ]
    if gateway.response_headers:
        lines += _response_transformer(gateway.response_headers)
    return lines


def _response_transformer(changes: ResponseHeaders) -> list[str]:
    """Kong's response-transformer, headers only: remove, replace (only headers
    that are there), add (only headers that aren't), append."""
    lines = ["# response-transformer"]
    lines += [f"http-after-response del-header {name}" for name in changes.remove]
    for name, value in changes.replace:
        present = is_(f"res.hdr({name}) -m found")
        lines.append(f"http-after-response set-header {name} {log_format(value)} if {present}")
    for name, value in changes.add:
        present = is_(f"res.hdr({name}) -m found")
        lines.append(f"http-after-response set-header {name} {log_format(value)} unless {present}")
    lines += [f"http-after-response add-header {name} {log_format(value)}" for name, value in changes.append]
    return lines


# -- prometheus -----------------------------------------------------------------------


def _metrics_frontend(bind: str) -> str:
    """Kong's prometheus plugin serves metrics on the Admin API, never on the proxy
    port; HAProxy's exporter gets a listener of its own."""
    lines = [
        f"bind {bind}",
        f"http-request use-service prometheus-exporter if {is_(f'path {METRICS_PATH}')}",
        f"http-request return status 404 content-type {quoted(JSON)} string {quoted(message('Not found'))}",
    ]
    return section("frontend metrics", lines)


def _secret_var(number: int) -> str:
    return f"proc.jwt_secret_{number}"
