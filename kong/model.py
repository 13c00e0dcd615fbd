"""The part of Kong's declarative config that the HAProxy generator can translate.

`parse()` checks a rendered kong.yml against that subset and returns plain
dataclasses, so haproxy.py only ever sees what it knows how to enforce. Anything
outside the subset is refused with a ConfigError naming the item: a gateway that
silently dropped a plugin, a field or a default would enforce less than kong.yml
says, and nobody would notice until it mattered.

Where Kong has a default, the default is what gets checked: a jwt plugin without
`uri_param_names` is refused because Kong's default ([jwt]) reads tokens from
query strings, which this translation deliberately doesn't do.

Plugins are global unless said otherwise: jwt and rate-limiting may also sit on
a service or a route, where, as in Kong, the most specific config replaces the
others.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kong.config import PLACEHOLDER
from kong.errors import ConfigError
from kong.lua import BEARER_CONTRACT_MEMBERS, KNOWN_POST_FUNCTION_LUA, KNOWN_PRE_FUNCTION_LUA, same_lua

FORMAT_VERSION = "3.0"

TOP_LEVEL_FIELDS = {"_format_version", "services", "consumers", "plugins"}
SERVICE_FIELDS = {"name", "url", "routes", "plugins"}
ROUTE_FIELDS = {"name", "paths", "methods", "strip_path", "plugins"}
CONSUMER_FIELDS = {"username", "jwt_secrets"}
JWT_SECRET_FIELDS = {"key", "secret", "algorithm"}
PLUGIN_FIELDS = {"name", "config"}
JWT_CONFIG_FIELDS = {
    "key_claim_name",
    "claims_to_verify",
    "maximum_expiration",
    "header_names",
    "uri_param_names",
    "cookie_names",
    "secret_is_base64",
}
CORRELATION_ID_FIELDS = {"header_name", "generator", "echo_downstream"}
RATE_LIMITING_FIELDS = {
    "minute",
    "limit_by",
    "policy",
    "fault_tolerant",
    "hide_client_headers",
    "error_code",
    "error_message",
}
REQUEST_SIZE_FIELDS = {"allowed_payload_size", "size_unit", "require_content_length"}
RESPONSE_TRANSFORMER_FIELDS = {"remove", "rename", "replace", "add", "append"}
TRANSFORM_FIELDS = {"headers", "json", "json_types"}
PROMETHEUS_FIELDS = {
    "per_consumer",
    "status_code_metrics",
    "latency_metrics",
    "bandwidth_metrics",
    "upstream_health_metrics",
}
TRANSLATABLE_PLUGINS = {
    "jwt",
    "pre-function",
    "post-function",
    "correlation-id",
    "rate-limiting",
    "request-size-limiting",
    "response-transformer",
    "prometheus",
}
# The ones a service or route may carry as well; the others only work globally here.
SCOPED_PLUGINS = {"jwt", "rate-limiting"}

# HAProxy's jwt_verify takes an HMAC secret inline; RSA/EC keys would need
# certificate files, which kong.yml doesn't carry.
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
# Kong's schema limits (kong/plugins/jwt/schema.lua).
VERIFIABLE_CLAIMS = ("exp", "nbf")
MAXIMUM_EXPIRATION_LIMIT = 31536000
# kong/plugins/request-size-limiting/handler.lua
SIZE_UNITS = {"bytes": 1, "kilobytes": 1024, "megabytes": 1048576}
# Kong buffers every request body before it contacts a service, spooling big ones
# to disk; HAProxy can only hold them in memory, one buffer per request, sized by
# the limit. Up to this limit that stays affordable.
MAX_BUFFERED_BODY = 1048576
# kong/plugins/rate-limiting/schema.lua: windows other than the minute aren't translated.
RATE_LIMIT_WINDOWS = ("second", "minute", "hour", "day", "month", "year")
RATE_LIMIT_MESSAGE = "API rate limit exceeded"

# Names end up in HAProxy sections, variables and headers: allow only characters
# that need no quoting there. (Kong's own rule for names is letters, digits and
# . - _ ~; HAProxy proxy names don't take ~.)
SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]+")
ROUTE_NAME = re.compile(r"[A-Za-z0-9._~-]+")
USERNAME = re.compile(r"[A-Za-z0-9._~@+-]+")
CLAIM_NAME = re.compile(r"[A-Za-z0-9_-]+")
# Header names of letters, digits and hyphens (nothing HAProxy would need quoted;
# nginx under Kong drops request headers with underscores); values printable
# ASCII without surrounding spaces or $ (which HAProxy expands in quotes).
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
HEADER_VALUE = re.compile(r"[\x21-\x23\x25-\x7e]([\x20-\x23\x25-\x7e]*[\x21-\x23\x25-\x7e])?")
METHOD = re.compile(r"[A-Z]+")
# Printable ASCII without the single quote: what HAProxy can take single-quoted.
QUOTABLE = re.compile(r"[\x20-\x26\x28-\x7e]+")


@dataclass(frozen=True)
class PathMatch:
    """One of a route's paths: an anchored PCRE (Kong's `~` paths) or a prefix."""

    pattern: str
    is_regex: bool


@dataclass(frozen=True)
class JwtAuth:
    """A jwt plugin's config, reduced to what varies within the subset we translate."""

    key_claim_name: str
    claims_to_verify: tuple[str, ...]
    maximum_expiration: int


@dataclass(frozen=True)
class RateLimit:
    """A rate-limiting plugin (limit_by ip, policy local): requests per client
    address and clock minute.

    Kong keeps one counter per plugin config, shared by every route it applies
    to: `scope` says where in kong.yml this one is, so that two configs alike in
    every other field still count apart.
    """

    scope: str
    minute: int
    hide_client_headers: bool
    error_code: int
    error_message: str


@dataclass(frozen=True)
class Route:
    name: str
    service: str
    paths: tuple[PathMatch, ...]  # empty: any path
    methods: tuple[str, ...]  # empty: any method
    jwt: JwtAuth | None  # the jwt config that applies (route, else service, else global)
    rate_limit: RateLimit | None = None  # likewise


@dataclass(frozen=True)
class Service:
    name: str
    url: str


@dataclass(frozen=True)
class Credential:
    """A consumer's jwt_secrets entry."""

    consumer: str
    key: str
    algorithm: str
    secret: str = field(repr=False)  # never in a repr, a log or a test report


@dataclass(frozen=True)
class CorrelationId:
    """A correlation-id plugin with the uuid generator."""

    header_name: str
    echo_downstream: bool


@dataclass(frozen=True)
class SizeLimit:
    """A request-size-limiting plugin."""

    allowed_bytes: int
    require_content_length: bool


@dataclass(frozen=True)
class ResponseHeaders:
    """A response-transformer's header changes, each kind in the order Kong applies them."""

    remove: tuple[str, ...] = ()
    replace: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    append: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Gateway:
    services: tuple[Service, ...]
    routes: tuple[Route, ...]  # in kong.yml order: the first match wins
    credentials: tuple[Credential, ...]
    user_id_from_sub: bool  # the known global post-function is configured
    bearer_contract: bool  # the known global pre-function is configured
    # The global plugins that act on every request; None (False) when absent.
    correlation_id: CorrelationId | None = None
    size_limit: SizeLimit | None = None
    response_headers: ResponseHeaders | None = None
    metrics: bool = False  # prometheus


@dataclass(frozen=True)
class _Scoped:
    """The plugins a service or route may override: the most specific config wins."""

    jwt: JwtAuth | None = None
    rate_limit: RateLimit | None = None


def parse(config: Any) -> Gateway:
    """Check a rendered kong.yml and reduce it to what the generator translates."""
    config = _mapping(config, "kong.yml")
    _only_fields(config, TOP_LEVEL_FIELDS, "the top level")
    version = config.get("_format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(f'_format_version: must be the string "{FORMAT_VERSION}", got {version!r}')

    global_plugins = _plugins(config.get("plugins"), "plugins", allowed=TRANSLATABLE_PLUGINS)
    global_scope = _scoped(global_plugins, "global", _Scoped())
    user_id_from_sub = "post-function" in global_plugins
    if user_id_from_sub:
        _check_function("post-function", KNOWN_POST_FUNCTION_LUA, "X-User-Id", *global_plugins["post-function"])
    bearer_contract = "pre-function" in global_plugins
    if bearer_contract:
        _check_function("pre-function", KNOWN_PRE_FUNCTION_LUA, "bearer token", *global_plugins["pre-function"])
    metrics = "prometheus" in global_plugins
    if metrics:
        _check_prometheus(*global_plugins["prometheus"])

    services, routes = [], []
    for index, node in enumerate(_list(config.get("services"), "services")):
        service, service_routes = _service(node, f"services[{index}]", global_scope)
        services.append(service)
        routes.extend(service_routes)
    _unique([service.name for service in services], "service name")
    _unique([route.name for route in routes], "route name")

    credentials = []
    for index, node in enumerate(_list(config.get("consumers"), "consumers")):
        credentials.extend(_consumer(node, f"consumers[{index}]"))
    _unique([credential.key for credential in credentials], "jwt_secrets key")

    _check_token_reading(routes, bearer_contract)

    def translated(name: str, translate):
        return translate(*global_plugins[name]) if name in global_plugins else None

    size_limit = translated("request-size-limiting", _size_limit)
    if size_limit is None:
        raise ConfigError(
            "plugins: the generator needs a global request-size-limiting plugin: HAProxy holds each request "
            "body in memory before it contacts a service (as Kong does on disk), in a buffer sized by that limit"
        )
    return Gateway(
        tuple(services),
        tuple(routes),
        tuple(credentials),
        user_id_from_sub,
        bearer_contract,
        correlation_id=translated("correlation-id", _correlation_id),
        size_limit=size_limit,
        response_headers=translated("response-transformer", _response_headers),
        metrics=metrics,
    )


def _check_token_reading(routes: list[Route], bearer_contract: bool) -> None:
    """HAProxy's JSON reader is not Kong's (it takes the first of two equal keys,
    reads numbers in strings): the jwt translation is faithful only for tokens
    the known pre-function lets through, and only for the key claims it checks."""
    for route in routes:
        if route.jwt is None:
            continue
        if not bearer_contract:
            raise ConfigError(
                f"route {route.name!r} has a jwt plugin: the generator translates jwt only together with the "
                "global pre-function that holds tokens to the bearer token contract (kong/lua.py)"
            )
        if route.jwt.key_claim_name not in BEARER_CONTRACT_MEMBERS:
            raise ConfigError(
                f"route {route.name!r}: key_claim_name {route.jwt.key_claim_name!r} is not one of the claims the "
                f"bearer token contract keeps unambiguous ({', '.join(BEARER_CONTRACT_MEMBERS)})"
            )


def _scoped(plugins: dict[str, tuple[Mapping, str]], scope: str, inherited: _Scoped) -> _Scoped:
    return _Scoped(
        jwt=_jwt_auth(plugins["jwt"]) if "jwt" in plugins else inherited.jwt,
        rate_limit=_rate_limit(plugins["rate-limiting"], scope) if "rate-limiting" in plugins else inherited.rate_limit,
    )


def _service(node: Any, where: str, inherited: _Scoped) -> tuple[Service, list[Route]]:
    node = _mapping(node, where)
    _only_fields(node, SERVICE_FIELDS, where)
    name = _name(node.get("name"), f"{where}.name", SERVICE_NAME)
    url = _string(node.get("url"), f"{where}.url")
    _check_url(url, f"{where}.url")
    plugins = _plugins(node.get("plugins"), f"{where}.plugins", allowed=SCOPED_PLUGINS)
    scoped = _scoped(plugins, f"service {name}", inherited)
    routes = [
        _route(route, f"{where}.routes[{index}]", f"{name}-{index}", name, scoped)
        for index, route in enumerate(_list(node.get("routes"), f"{where}.routes"))
    ]
    return Service(name, url), routes


def _route(node: Any, where: str, default_name: str, service: str, inherited: _Scoped) -> Route:
    node = _mapping(node, where)
    _only_fields(node, ROUTE_FIELDS, where)
    # Names are optional in Kong; the HAProxy config routes by name.
    name = _name(node.get("name", default_name), f"{where}.name", ROUTE_NAME)
    if node.get("strip_path") is not False:
        raise ConfigError(
            f"{where}.strip_path (route {name!r}): the generator translates only strip_path: false "
            "(Kong's default, true, strips the matched path before proxying)"
        )
    paths = tuple(
        _path(path, f"{where}.paths[{index}]") for index, path in enumerate(_list(node.get("paths"), f"{where}.paths"))
    )
    methods = tuple(
        _name(method, f"{where}.methods[{index}]", METHOD)
        for index, method in enumerate(_list(node.get("methods"), f"{where}.methods"))
    )
    if not paths and not methods:
        raise ConfigError(f"{where} (route {name!r}): needs paths or methods to match on")
    plugins = _plugins(node.get("plugins"), f"{where}.plugins", allowed=SCOPED_PLUGINS)
    scoped = _scoped(plugins, f"route {name}", inherited)
    return Route(name, service, paths, methods, scoped.jwt, scoped.rate_limit)


def _path(value: Any, where: str) -> PathMatch:
    path = _string(value, where)
    if not QUOTABLE.fullmatch(path):
        raise ConfigError(f"{where}: {path!r} has characters the generator can't quote for HAProxy")
    if path.startswith("~"):
        # Kong matches regex paths from the start of the request path.
        pattern = "^" + path[1:]
        try:
            re.compile(pattern)
        except re.error as error:  # caught here, not as a HAProxy startup failure
            raise ConfigError(f"{where}: {path!r} is not a valid regex: {error}") from None
        return PathMatch(pattern, is_regex=True)
    if not path.startswith("/"):
        raise ConfigError(f"{where}: {path!r} must start with / (a prefix) or ~ (a regex)")
    return PathMatch(path, is_regex=False)


def _plugins(value: Any, where: str, allowed: set[str]) -> dict[str, tuple[Mapping, str]]:
    """The plugins at one level, by name: (config, where) for each."""
    plugins: dict[str, tuple[Mapping, str]] = {}
    for index, node in enumerate(_list(value, where)):
        here = f"{where}[{index}]"
        node = _mapping(node, here)
        name = _string(node.get("name"), f"{here}.name")
        if name not in TRANSLATABLE_PLUGINS:
            raise ConfigError(f"{here}: the generator cannot translate plugin {name!r} to HAProxy")
        if name not in allowed:
            raise ConfigError(
                f"{here}: the generator cannot translate a {name} plugin that isn't global "
                "(in Kong the most specific one replaces the global one)"
            )
        _only_fields(node, PLUGIN_FIELDS, f"{here} ({name})")
        if name in plugins:
            raise ConfigError(f"{here}: a second {name} plugin at the same level")
        config = node.get("config")
        plugins[name] = (_mapping({} if config is None else config, f"{here}.config"), f"{here}.config")
    return plugins


def _jwt_auth(plugin: tuple[Mapping, str]) -> JwtAuth:
    config, where = plugin
    _only_fields(config, JWT_CONFIG_FIELDS, f"{where} (jwt)")

    key_claim_name = _name(config.get("key_claim_name", "iss"), f"{where}.key_claim_name", CLAIM_NAME)

    # Kong has no default here: without exp in the list, expired tokens pass.
    claims = _list(config.get("claims_to_verify"), f"{where}.claims_to_verify")
    for claim in claims:
        if claim not in VERIFIABLE_CLAIMS:
            raise ConfigError(f"{where}.claims_to_verify: {claim!r} is not one of {', '.join(VERIFIABLE_CLAIMS)}")
    _unique(claims, f"claim in {where}.claims_to_verify")

    maximum = config.get("maximum_expiration", 0)
    if type(maximum) is not int or not 0 <= maximum <= MAXIMUM_EXPIRATION_LIMIT:  # bool is an int subclass
        raise ConfigError(f"{where}.maximum_expiration: must be whole seconds from 0 to {MAXIMUM_EXPIRATION_LIMIT}")
    if maximum > 0 and "exp" not in claims:
        raise ConfigError(f"{where}.maximum_expiration: needs exp in claims_to_verify (as Kong requires)")

    header_names = _list(config.get("header_names", ["authorization"]), f"{where}.header_names")
    if [str(name).lower() for name in header_names] != ["authorization"]:
        raise ConfigError(f"{where}.header_names: the generator translates only [authorization]")
    if "uri_param_names" not in config:
        raise ConfigError(
            f"{where}.uri_param_names: set it to [] explicitly; "
            "Kong's default ([jwt]) accepts tokens in query strings, which the generator does not translate"
        )
    if config["uri_param_names"] != []:
        raise ConfigError(
            f"{where}.uri_param_names: the generator translates only [] (tokens in query strings end up in logs)"
        )
    if config.get("cookie_names", []) != []:
        raise ConfigError(f"{where}.cookie_names: the generator translates only []")
    if config.get("secret_is_base64", False) is not False:
        raise ConfigError(f"{where}.secret_is_base64: the generator translates only false")

    return JwtAuth(key_claim_name, tuple(claims), maximum)


def _check_function(name: str, known: str, what: str, config: Mapping, where: str) -> None:
    """A pre- or post-function must be exactly the known snippet, in the access phase."""
    for phase in config:
        if phase != "access":
            raise ConfigError(
                f"{where}.{phase}: the generator cannot translate {name} code outside the access phase to HAProxy"
            )
    snippets = _list(config.get("access"), f"{where}.access")
    if len(snippets) != 1 or not same_lua(snippets[0], known):
        raise ConfigError(
            f"{where}.access: the generator cannot translate this Lua to HAProxy; it knows only "
            f"the {what} {name} in kong/lua.py"
        )


def _correlation_id(config: Mapping, where: str) -> CorrelationId:
    _only_fields(config, CORRELATION_ID_FIELDS, f"{where} (correlation-id)")
    header_name = _name(config.get("header_name", "Kong-Request-ID"), f"{where}.header_name", HEADER_NAME)
    # Kong's default, uuid#counter, and tracker make ids HAProxy has no fetch for.
    if config.get("generator", "uuid#counter") != "uuid":
        raise ConfigError(f"{where}.generator: the generator translates only uuid (set it explicitly)")
    return CorrelationId(header_name, _boolean(config, "echo_downstream", False, where))


def _rate_limit(plugin: tuple[Mapping, str], scope: str) -> RateLimit:
    config, where = plugin
    for window in RATE_LIMIT_WINDOWS:
        if window != "minute" and config.get(window) is not None:
            raise ConfigError(f"{where}.{window}: the generator translates only per-minute limits (minute)")
    _only_fields(config, RATE_LIMITING_FIELDS | set(RATE_LIMIT_WINDOWS), f"{where} (rate-limiting)")
    minute = config.get("minute")
    if type(minute) is not int or minute < 1:  # bool is an int subclass
        raise ConfigError(f"{where}.minute: must be a whole number of requests, at least 1")
    # Kong's default, consumer, would make every user of this system one client:
    # they all authenticate as the same jwt consumer.
    if config.get("limit_by") != "ip":
        raise ConfigError(f"{where}.limit_by: the generator translates only ip (set it explicitly)")
    # The other policies share counters through a database or Redis; HAProxy's
    # stick table is per process, as Kong's local policy is per node.
    if config.get("policy", "local") != "local":
        raise ConfigError(f"{where}.policy: the generator translates only local")
    # Local counters can't fail, so whether a failure lets requests through is moot.
    _boolean(config, "fault_tolerant", True, where)
    error_code = config.get("error_code", 429)
    if type(error_code) is not int or not 400 <= error_code <= 599:
        raise ConfigError(f"{where}.error_code: must be an HTTP status from 400 to 599")
    error_message = config.get("error_message", RATE_LIMIT_MESSAGE)
    if not isinstance(error_message, str) or not HEADER_VALUE.fullmatch(error_message):
        raise ConfigError(f"{where}.error_message: use printable ASCII without $")
    return RateLimit(scope, minute, _boolean(config, "hide_client_headers", False, where), error_code, error_message)


def _size_limit(config: Mapping, where: str) -> SizeLimit:
    _only_fields(config, REQUEST_SIZE_FIELDS, f"{where} (request-size-limiting)")
    size = config.get("allowed_payload_size", 128)
    if type(size) is not int or size < 0:
        raise ConfigError(f"{where}.allowed_payload_size: must be a whole number, at least 0")
    unit = config.get("size_unit", "megabytes")
    if unit not in SIZE_UNITS:
        raise ConfigError(f"{where}.size_unit: must be one of {', '.join(SIZE_UNITS)}, got {unit!r}")
    if size * SIZE_UNITS[unit] > MAX_BUFFERED_BODY:
        raise ConfigError(
            f"{where}.allowed_payload_size: the generator translates limits up to {MAX_BUFFERED_BODY} bytes "
            "(HAProxy holds each body in memory)"
        )
    return SizeLimit(size * SIZE_UNITS[unit], _boolean(config, "require_content_length", False, where))


def _response_headers(config: Mapping, where: str) -> ResponseHeaders:
    _only_fields(config, RESPONSE_TRANSFORMER_FIELDS, f"{where} (response-transformer)")
    changes = {}
    for kind in sorted(RESPONSE_TRANSFORMER_FIELDS):
        here = f"{where}.{kind}"
        section = _mapping({} if config.get(kind) is None else config[kind], here)
        _only_fields(section, TRANSFORM_FIELDS, here)
        # Body changes would mean buffering and rewriting JSON in HAProxy.
        for field_name in ("json", "json_types"):
            if _list(section.get(field_name), f"{here}.{field_name}"):
                raise ConfigError(f"{here}.{field_name}: the generator translates header changes only")
        headers = _list(section.get("headers"), f"{here}.headers")
        if kind == "rename" and headers:
            raise ConfigError(f"{here}.headers: the generator doesn't translate renaming headers")
        if kind == "remove":
            changes[kind] = tuple(
                _name(name, f"{here}.headers[{index}]", HEADER_NAME) for index, name in enumerate(headers)
            )
        elif kind != "rename":
            changes[kind] = tuple(
                _header_with_value(entry, f"{here}.headers[{index}]") for index, entry in enumerate(headers)
            )
    return ResponseHeaders(**changes)


def _header_with_value(entry: Any, where: str) -> tuple[str, str]:
    """A "name:value" entry, split as Kong splits it (^([^:]+):*(.-)$)."""
    text = _string(entry, where)
    name, colon, value = text.partition(":")
    value = value.lstrip(":")
    if not colon or not value:
        raise ConfigError(f"{where}: expected name:value, got {text!r}")
    _name(name, where, HEADER_NAME)
    if not HEADER_VALUE.fullmatch(value):
        raise ConfigError(f"{where}: the value {value!r} must be printable ASCII without $")
    return name, value


def _check_prometheus(config: Mapping, where: str) -> None:
    _only_fields(config, PROMETHEUS_FIELDS, f"{where} (prometheus)")
    # HAProxy's exporter always has its own status code, latency, bandwidth and
    # server health metrics; it has no consumers to count by.
    for name in sorted(PROMETHEUS_FIELDS):
        _boolean(config, name, False, where)
    if config.get("per_consumer", False):
        raise ConfigError(f"{where}.per_consumer: the generator translates only false (HAProxy has no consumers)")


def _boolean(config: Mapping, name: str, default: bool, where: str) -> bool:
    value = config.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{name}: expected true or false, got {value!r}")
    return value


def _consumer(node: Any, where: str) -> list[Credential]:
    node = _mapping(node, where)
    _only_fields(node, CONSUMER_FIELDS, where)
    username = _name(node.get("username"), f"{where}.username", USERNAME)
    credentials = []
    for index, secret_node in enumerate(_list(node.get("jwt_secrets"), f"{where}.jwt_secrets")):
        here = f"{where}.jwt_secrets[{index}]"
        secret_node = _mapping(secret_node, here)
        _only_fields(secret_node, JWT_SECRET_FIELDS, here)
        key = _string(secret_node.get("key"), f"{here}.key")
        if not QUOTABLE.fullmatch(key) or " " in key:
            raise ConfigError(f"{here}.key: use printable ASCII without spaces or quotes")
        algorithm = secret_node.get("algorithm", "HS256")
        if algorithm not in HMAC_ALGORITHMS:
            raise ConfigError(
                f"{here}.algorithm: the generator translates only HMAC credentials "
                f"({', '.join(HMAC_ALGORITHMS)}), not {algorithm!r}"
            )
        # Never echo the secret's value in a message: these get printed.
        secret = secret_node.get("secret")
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{here}.secret: must be a non-empty string")
        if PLACEHOLDER.fullmatch(secret):
            raise ConfigError(f"{here}.secret: still a placeholder; render the config first")
        credentials.append(Credential(username, key, algorithm, secret))
    return credentials


def _check_url(url: str, where: str) -> None:
    if not QUOTABLE.fullmatch(url):  # it is copied into a comment: no line breaks
        raise ConfigError(f"{where}: {url!r} has characters the generator can't copy into HAProxy's config")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"{where}: the generator translates only http://host[:port] urls, got {url!r}")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where}: the generator can't translate a path, query or credentials in {url!r}")


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _name(value: Any, where: str, allowed: re.Pattern) -> str:
    name = _string(value, where)
    if not allowed.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} may only use the characters {allowed.pattern}")
    return name


def _only_fields(node: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in node if key not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: the generator cannot translate field {unknown[0]!r} "
            f"(it knows only: {', '.join(sorted(allowed))})"
        )


def _unique(values: list, what: str) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"duplicate {what} {value!r}")
        seen.add(value)
