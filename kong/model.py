"""The part of Kong's declarative config that the HAProxy generator can translate.

`parse()` checks a rendered kong.yml against that subset and returns plain
dataclasses, so haproxy.py only ever sees what it knows how to enforce. Anything
outside the subset is refused with a ConfigError naming the item: a gateway that
silently dropped a plugin, a field or a default would enforce less than kong.yml
says, and nobody would notice until it mattered.

Where Kong has a default, the default is what gets checked: a jwt plugin without
`uri_param_names` is refused because Kong's default ([jwt]) reads tokens from
query strings, which this translation deliberately doesn't do.
"""
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kong.config import PLACEHOLDER
from kong.errors import ConfigError

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
TRANSLATABLE_PLUGINS = {"jwt", "post-function"}

# HAProxy's jwt_verify takes an HMAC secret inline; RSA/EC keys would need
# certificate files, which kong.yml doesn't carry.
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
# Kong's schema limits (kong/plugins/jwt/schema.lua).
VERIFIABLE_CLAIMS = ("exp", "nbf")
MAXIMUM_EXPIRATION_LIMIT = 31536000

# The translation table for Lua. HAProxy can't run Kong's Lua, so the generator
# only accepts snippets it knows, each with a hand-written HAProxy equivalent.
# This one (kong.yml's global post-function) drops any X-User-Id the client sent
# and, once the jwt plugin has verified a token, passes the token's `sub` claim on
# as X-User-Id; haproxy.py's _user_id_from_sub() is that in HAProxy. A changed
# snippet is refused, never guessed at: change this text and those rules together.
KNOWN_POST_FUNCTION_LUA = """
local jwt_parser = require "kong.plugins.jwt.jwt_parser"
kong.service.request.clear_header("X-User-Id")
local token = kong.ctx.shared.authenticated_jwt_token
if token then
  local jwt = jwt_parser:new(token)
  if jwt and jwt.claims.sub ~= nil then
    kong.service.request.set_header("X-User-Id", tostring(jwt.claims.sub))
  end
end
"""

# Names end up in HAProxy sections, variables and headers: allow only characters
# that need no quoting there. (Kong's own rule for names is letters, digits and
# . - _ ~; HAProxy proxy names don't take ~.)
SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]+")
ROUTE_NAME = re.compile(r"[A-Za-z0-9._~-]+")
USERNAME = re.compile(r"[A-Za-z0-9._~@+-]+")
CLAIM_NAME = re.compile(r"[A-Za-z0-9_-]+")
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
class Route:
    name: str
    service: str
    paths: tuple[PathMatch, ...]  # empty: any path
    methods: tuple[str, ...]  # empty: any method
    jwt: JwtAuth | None  # the jwt config that applies (route, else service, else global)


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
class Gateway:
    services: tuple[Service, ...]
    routes: tuple[Route, ...]  # in kong.yml order: the first match wins
    credentials: tuple[Credential, ...]
    user_id_from_sub: bool  # the known global post-function is configured


def parse(config: Any) -> Gateway:
    """Check a rendered kong.yml and reduce it to what the generator translates."""
    config = _mapping(config, "kong.yml")
    _only_fields(config, TOP_LEVEL_FIELDS, "the top level")
    version = config.get("_format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(f'_format_version: must be the string "{FORMAT_VERSION}", got {version!r}')

    global_plugins = _plugins(config.get("plugins"), "plugins", allowed={"jwt", "post-function"})
    global_jwt = _jwt_auth(global_plugins["jwt"]) if "jwt" in global_plugins else None
    user_id_from_sub = "post-function" in global_plugins
    if user_id_from_sub:
        _check_post_function(*global_plugins["post-function"])

    services, routes = [], []
    for index, node in enumerate(_list(config.get("services"), "services")):
        service, service_routes = _service(node, f"services[{index}]", global_jwt)
        services.append(service)
        routes.extend(service_routes)
    _unique([service.name for service in services], "service name")
    _unique([route.name for route in routes], "route name")

    credentials = []
    for index, node in enumerate(_list(config.get("consumers"), "consumers")):
        credentials.extend(_consumer(node, f"consumers[{index}]"))
    _unique([credential.key for credential in credentials], "jwt_secrets key")

    return Gateway(tuple(services), tuple(routes), tuple(credentials), user_id_from_sub)


def _service(node: Any, where: str, global_jwt: JwtAuth | None) -> tuple[Service, list[Route]]:
    node = _mapping(node, where)
    _only_fields(node, SERVICE_FIELDS, where)
    name = _name(node.get("name"), f"{where}.name", SERVICE_NAME)
    url = _string(node.get("url"), f"{where}.url")
    _check_url(url, f"{where}.url")
    plugins = _plugins(node.get("plugins"), f"{where}.plugins", allowed={"jwt"})
    service_jwt = _jwt_auth(plugins["jwt"]) if "jwt" in plugins else global_jwt
    routes = [
        _route(route, f"{where}.routes[{index}]", f"{name}-{index}", name, service_jwt)
        for index, route in enumerate(_list(node.get("routes"), f"{where}.routes"))
    ]
    return Service(name, url), routes


def _route(node: Any, where: str, default_name: str, service: str, service_jwt: JwtAuth | None) -> Route:
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
        _path(path, f"{where}.paths[{index}]")
        for index, path in enumerate(_list(node.get("paths"), f"{where}.paths"))
    )
    methods = tuple(
        _name(method, f"{where}.methods[{index}]", METHOD)
        for index, method in enumerate(_list(node.get("methods"), f"{where}.methods"))
    )
    if not paths and not methods:
        raise ConfigError(f"{where} (route {name!r}): needs paths or methods to match on")
    plugins = _plugins(node.get("plugins"), f"{where}.plugins", allowed={"jwt"})
    jwt = _jwt_auth(plugins["jwt"]) if "jwt" in plugins else service_jwt
    return Route(name, service, paths, methods, jwt)


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
            raise ConfigError(
                f"{where}.claims_to_verify: {claim!r} is not one of {', '.join(VERIFIABLE_CLAIMS)}"
            )
    _unique(claims, f"claim in {where}.claims_to_verify")

    maximum = config.get("maximum_expiration", 0)
    if type(maximum) is not int or not 0 <= maximum <= MAXIMUM_EXPIRATION_LIMIT:  # bool is an int subclass
        raise ConfigError(
            f"{where}.maximum_expiration: must be whole seconds from 0 to {MAXIMUM_EXPIRATION_LIMIT}"
        )
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
            f"{where}.uri_param_names: the generator translates only [] "
            "(tokens in query strings end up in logs)"
        )
    if config.get("cookie_names", []) != []:
        raise ConfigError(f"{where}.cookie_names: the generator translates only []")
    if config.get("secret_is_base64", False) is not False:
        raise ConfigError(f"{where}.secret_is_base64: the generator translates only false")

    return JwtAuth(key_claim_name, tuple(claims), maximum)


def _check_post_function(config: Mapping, where: str) -> None:
    for phase in config:
        if phase != "access":
            raise ConfigError(
                f"{where}.{phase}: the generator cannot translate post-function code "
                "outside the access phase to HAProxy"
            )
    snippets = _list(config.get("access"), f"{where}.access")
    if len(snippets) != 1 or _normalise_lua(snippets[0]) != _normalise_lua(KNOWN_POST_FUNCTION_LUA):
        raise ConfigError(
            f"{where}.access: the generator cannot translate this Lua to HAProxy; it knows only "
            "the X-User-Id snippet in kong/model.py (KNOWN_POST_FUNCTION_LUA)"
        )


def _normalise_lua(code: Any) -> str:
    return " ".join(str(code).split())


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
