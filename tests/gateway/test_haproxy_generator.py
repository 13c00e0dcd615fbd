"""The HAProxy generator: its output for kong.yml is a valid HAProxy config, and
whatever in kong.yml it can't translate is refused with a message naming it."""

import re
import subprocess

import pytest

from kong.errors import ConfigError
from kong.haproxy import DEFAULT_METRICS_BIND, generate_haproxy_config
from kong.lua import KNOWN_POST_FUNCTION_LUA, KNOWN_PRE_FUNCTION_LUA
from kong.model import CorrelationId, ResponseHeaders, SizeLimit, parse

UPSTREAMS = {"users": "127.0.0.1:8101", "products": "127.0.0.1:8102", "orders": "127.0.0.1:8103"}


def service(config: dict, name: str) -> dict:
    return next(node for node in config["services"] if node["name"] == name)


def route(config: dict, name: str) -> dict:
    return next(node for svc in config["services"] for node in svc["routes"] if node["name"] == name)


def jwt_config(config: dict, route_name: str) -> dict:
    return next(plugin for plugin in route(config, route_name)["plugins"] if plugin["name"] == "jwt")["config"]


def post_function(config: dict) -> dict:
    return global_plugin(config, "post-function")


def pre_function(config: dict) -> dict:
    return global_plugin(config, "pre-function")


def global_plugin(config: dict, name: str) -> dict:
    return next(plugin for plugin in config["plugins"] if plugin["name"] == name)


def plugin_config(config: dict, name: str) -> dict:
    return global_plugin(config, name)["config"]


def rate_limit_config(config: dict, route_name: str = "users-token") -> dict:
    plugins = route(config, route_name)["plugins"]
    return next(plugin for plugin in plugins if plugin["name"] == "rate-limiting")["config"]


def warnings_or_errors(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    return output if result.returncode != 0 or "WARNING" in output else ""


def haproxy_check(haproxy: str, text: str, tmp_path) -> subprocess.CompletedProcess:
    config_file = tmp_path / "haproxy.cfg"
    config_file.write_text(text)
    return subprocess.run([haproxy, "-c", "-f", str(config_file)], capture_output=True, text=True, timeout=30)


def test_the_config_for_kong_yml_passes_haproxy_check(haproxy_binary, kong_config, tmp_path):
    text = generate_haproxy_config(kong_config, UPSTREAMS)

    result = haproxy_check(haproxy_binary, text, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_the_config_says_it_is_generated_and_where_from(kong_config):
    text = generate_haproxy_config(kong_config, UPSTREAMS)

    assert text.startswith("# generated from kong.yml by python -m kong — do not edit")


def test_the_same_kong_yml_gives_the_same_config(kong_config):
    # scripts/native_stack.py restarts the gateway only when the output changed.
    assert generate_haproxy_config(kong_config, UPSTREAMS) == generate_haproxy_config(kong_config, UPSTREAMS)


def test_the_bind_address_and_runtime_paths_are_parameters(haproxy_binary, kong_config, tmp_path):
    text = generate_haproxy_config(
        kong_config,
        UPSTREAMS,
        bind="127.0.0.1:18000",
        pidfile=str(tmp_path / "haproxy.pid"),
        stats_socket=str(tmp_path / "haproxy.sock"),
    )

    assert "bind 127.0.0.1:18000" in text
    assert haproxy_check(haproxy_binary, text, tmp_path).returncode == 0


def test_nbf_can_be_verified_too(haproxy_binary, make_config, tmp_path):
    config = make_config()
    jwt_config(config, "users-me")["claims_to_verify"] = ["exp", "nbf"]

    result = haproxy_check(haproxy_binary, generate_haproxy_config(config, UPSTREAMS), tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_route_level_jwt_plugin_overrides_the_service_level_one(make_config):
    config = make_config()
    products = service(config, "products")
    products["plugins"] = [{"name": "jwt", "config": dict(jwt_config(config, "products-create"))}]
    jwt_config(config, "products-create")["maximum_expiration"] = 60

    jwt_by_route = {node.name: node.jwt for node in parse(config).routes if node.service == "products"}

    assert jwt_by_route["products-list"].maximum_expiration == 900  # from the service
    assert jwt_by_route["products-create"].maximum_expiration == 60  # its own


def test_kong_yml_global_plugins_are_all_translated(kong_config):
    parsed = parse(kong_config)

    assert parsed.correlation_id == CorrelationId("X-Request-ID", echo_downstream=True)
    assert parsed.size_limit == SizeLimit(allowed_bytes=65536, require_content_length=False)
    assert parsed.bearer_contract and parsed.user_id_from_sub
    assert parsed.response_headers == ResponseHeaders(
        remove=("Server", "X-Powered-By"), add=(("X-Content-Type-Options", "nosniff"),)
    )
    assert parsed.metrics


def test_kong_yml_limits_logins_only(kong_config):
    limits = {node.name: node.rate_limit for node in parse(kong_config).routes}

    assert limits.pop("users-token").minute == 60
    assert set(limits.values()) == {None}


def test_every_plugin_option_the_generator_translates_passes_haproxy_check(haproxy_binary, make_config, tmp_path):
    config = make_config()
    plugin_config(config, "correlation-id").update(header_name="Kong-Request-ID", echo_downstream=False)
    plugin_config(config, "request-size-limiting").update(
        allowed_payload_size=512, size_unit="kilobytes", require_content_length=True
    )
    plugin_config(config, "response-transformer").update(
        replace={"headers": ["Cache-Control:no-store"]},
        append={"headers": ["Vary:Origin", "X-Percent:100%"]},
        rename={"headers": []},
        add={"headers": ["X-Frame-Options:DENY"], "json": [], "json_types": []},
    )
    rate_limit_config(config).update(hide_client_headers=True, error_code=503, error_message="Slow down")
    service(config, "orders")["plugins"] = [{"name": "rate-limiting", "config": {"minute": 5, "limit_by": "ip"}}]
    config["plugins"].append({"name": "rate-limiting", "config": {"minute": 1000, "limit_by": "ip"}})

    result = haproxy_check(haproxy_binary, generate_haproxy_config(config, UPSTREAMS), tmp_path)

    assert not warnings_or_errors(result), warnings_or_errors(result)


def test_a_rate_limit_counts_for_the_level_it_is_configured_on(make_config):
    config = make_config()
    users_limit = {"minute": 5, "limit_by": "ip"}
    service(config, "users")["plugins"] = [{"name": "rate-limiting", "config": users_limit}]
    route(config, "products-list")["plugins"] = [{"name": "rate-limiting", "config": dict(users_limit)}]

    limits = {node.name: node.rate_limit for node in parse(config).routes}
    text = generate_haproxy_config(config, UPSTREAMS)

    # The service's routes share one counter; users-token has its own config, and
    # products-list's equal config still counts apart, as Kong keeps one per plugin.
    assert limits["users-register"] == limits["users-me"]
    assert limits["users-register"].scope == "service users"
    assert limits["users-token"].minute == 60
    assert limits["products-list"].scope == "route products-list"
    assert limits["products-read"] is None
    assert text.count("stick-table") == 3
    assert "acl rate_limit1 var(txn.route) -m str users-register users-me docs openapi-users" in text


def test_the_metrics_listener_is_a_parameter_and_only_there_with_the_prometheus_plugin(make_config):
    config = make_config()
    with_metrics = generate_haproxy_config(config, UPSTREAMS, metrics_bind="127.0.0.2:9101")
    config["plugins"].remove(global_plugin(config, "prometheus"))
    without = generate_haproxy_config(config, UPSTREAMS)

    assert "frontend metrics\n    bind 127.0.0.2:9101\n" in with_metrics
    assert "prometheus-exporter" not in without
    assert DEFAULT_METRICS_BIND == "127.0.0.1:8405"


@pytest.mark.parametrize("address", ["127.0.0.1:8405", "127.9.9.9:1", "localhost:9000", "[::1]:8405"])
def test_metrics_may_listen_on_any_loopback_address(kong_config, address):
    assert f"bind {address}\n" in generate_haproxy_config(kong_config, UPSTREAMS, metrics_bind=address)


@pytest.mark.parametrize("address", ["0.0.0.0:8405", "192.168.1.10:8405", "[::]:8405", "metrics.example:8405"])
def test_metrics_may_not_listen_beyond_this_host(kong_config, address):
    with pytest.raises(ConfigError, match="metrics address: must be a loopback address"):
        generate_haproxy_config(kong_config, UPSTREAMS, metrics_bind=address)


def test_a_service_named_like_a_rate_limit_table_is_refused(make_config):
    config = make_config()
    service(config, "orders")["name"] = "rate_limit_1"

    upstreams = {"users": UPSTREAMS["users"], "products": UPSTREAMS["products"], "rate_limit_1": UPSTREAMS["orders"]}

    with pytest.raises(ConfigError, match="'rate_limit_1' is taken"):
        generate_haproxy_config(config, upstreams)


@pytest.mark.parametrize(
    "plugin, known", [("post-function", KNOWN_POST_FUNCTION_LUA), ("pre-function", KNOWN_PRE_FUNCTION_LUA)]
)
def test_known_lua_is_recognised_whatever_its_indentation(make_config, plugin, known):
    config = make_config()
    global_plugin(config, plugin)["config"]["access"] = [
        "\n\n".join("\t" + line.strip() for line in known.splitlines())
    ]

    parsed = parse(config)

    assert parsed.user_id_from_sub and parsed.bearer_contract


def test_jwt_without_the_bearer_token_contract_is_refused(make_config):
    # HAProxy reads JSON unlike Kong (the first of two equal keys, numbers in strings):
    # without the contract, the two gateways would take different tokens.
    config = make_config()
    config["plugins"].remove(pre_function(config))

    with pytest.raises(ConfigError, match="route 'users-me' has a jwt plugin.*bearer token contract"):
        parse(config)


def test_a_key_claim_the_contract_does_not_check_is_refused(make_config):
    config = make_config()
    jwt_config(config, "users-me")["key_claim_name"] = "kid"

    with pytest.raises(ConfigError, match="key_claim_name 'kid' is not one of the claims"):
        parse(config)


def test_a_kong_yml_without_a_size_limit_is_refused(make_config):
    config = make_config()
    config["plugins"].remove(global_plugin(config, "request-size-limiting"))

    with pytest.raises(ConfigError, match="needs a global request-size-limiting plugin"):
        parse(config)


@pytest.mark.parametrize("size, unit", [(1025, "kilobytes"), (2, "megabytes"), (1048577, "bytes")])
def test_a_size_limit_haproxy_cant_hold_in_memory_is_refused(make_config, size, unit):
    config = make_config()
    plugin_config(config, "request-size-limiting").update(allowed_payload_size=size, size_unit=unit)

    with pytest.raises(ConfigError, match="up to 1048576 bytes"):
        parse(config)


def test_the_buffer_holds_the_largest_request_the_limits_allow(kong_config):
    text = generate_haproxy_config(kong_config, UPSTREAMS)

    size = int(re.search(r"tune\.bufsize (\d+)", text)[1])
    reserve = int(re.search(r"tune\.maxrewrite (\d+)", text)[1])
    # 32 KiB of request line and headers, the 64 KiB body, HTX framing; and room
    # for the headers the gateway adds, copies of an 8 KiB Host and path among them.
    assert size - reserve >= 32768 + 65536 + 4096
    assert reserve >= 2 * 8192 + 1024


def change_lua(config):
    post_function(config)["config"]["access"][0] += 'kong.service.request.set_header("X-Admin", "1")\n'


def change_pre_function(config):
    # One space more inside a Lua pattern changes what it matches: not the known text.
    lua = pre_function(config)["config"]["access"][0]
    pre_function(config)["config"]["access"][0] = lua.replace("[Rr] +(.*)$", "[Rr]  +(.*)$")


def add_route_post_function(config):
    route(config, "users-me")["plugins"].append(post_function(config))


def add_route_plugin(config):
    route(config, "products-list")["plugins"] = [{"name": "cors", "config": {}}]


def set_plugin(name, **fields):
    def change(config):
        plugin_config(config, name).update(fields)

    return change


def drop_plugin_field(name, field):
    def change(config):
        del plugin_config(config, name)[field]

    return change


def set_rate_limit(**fields):
    def change(config):
        rate_limit_config(config).update(fields)

    return change


def drop_rate_limit(field):
    def change(config):
        del rate_limit_config(config)[field]

    return change


def add_to_route(plugin_name):
    def change(config):
        route(config, "users-me")["plugins"].append({"name": plugin_name, "config": {}})

    return change


def old_post_function(config):
    # The snippet before it cleared the consumer headers: no longer what the rules do.
    lua = KNOWN_POST_FUNCTION_LUA.split("else\n")[0] + "end\n"
    post_function(config)["config"]["access"] = [lua]


def set_credential(**fields):
    def change(config):
        config["consumers"][0]["jwt_secrets"][0].update(fields)

    return change


def set_jwt(**fields):
    def change(config):
        jwt_config(config, "users-me").update(fields)

    return change


def drop_jwt(field):
    def change(config):
        del jwt_config(config, "users-me")[field]

    return change


def set_route(route_name, **fields):
    def change(config):
        route(config, route_name).update(fields)

    return change


def drop_route(route_name, field):
    def change(config):
        del route(config, route_name)[field]

    return change


@pytest.mark.parametrize(
    "change, where, says",
    [
        (lambda config: config.update(upstreams=[]), "the top level", "field 'upstreams'"),
        (lambda config: config.update(_format_version="2.1"), "_format_version", '"3.0"'),
        (add_route_plugin, "services[1].routes[0].plugins[0]", "cannot translate plugin 'cors'"),
        (
            lambda config: config["plugins"].insert(1, {"name": "cors", "config": {}}),
            "plugins[1]",
            "cannot translate plugin 'cors'",
        ),
        (set_jwt(uri_param_names=["jwt"]), "uri_param_names", "only []"),
        (drop_jwt("uri_param_names"), "uri_param_names", "query strings"),
        (set_jwt(cookie_names=["token"]), "cookie_names", "only []"),
        (set_jwt(header_names=["x-token"]), "header_names", "only [authorization]"),
        (set_jwt(secret_is_base64=True), "secret_is_base64", "only false"),
        (set_jwt(claims_to_verify=["iat"]), "claims_to_verify", "'iat'"),
        (set_jwt(claims_to_verify=[]), "maximum_expiration", "needs exp"),
        (set_jwt(anonymous="guest"), "services[0].routes[2].plugins[0].config", "field 'anonymous'"),
        (set_route("users-me", strip_path=True), "services[0].routes[2].strip_path", "strip_path: false"),
        (drop_route("users-me", "strip_path"), "services[0].routes[2].strip_path", "Kong's default"),
        (set_route("users-me", hosts=["shop.example"]), "services[0].routes[2]", "field 'hosts'"),
        (set_route("users-me", paths=["~/it's$"]), "services[0].routes[2].paths[0]", "can't quote"),
        (set_route("users-me", paths=["~/users/(me$"]), "services[0].routes[2].paths[0]", "not a valid regex"),
        (lambda config: service(config, "users").update(retries=3), "services[0]", "field 'retries'"),
        (lambda config: service(config, "users").update(url="https://users:8443"), "services[0].url", "http://"),
        (lambda config: service(config, "users").update(url="http://users:8000/v1"), "services[0].url", "path"),
        (
            lambda config: service(config, "users").update(url="http://users:8000\nuse_backend users"),
            "services[0].url",
            "can't copy",
        ),
        (change_lua, "plugins[1].config.access", "cannot translate this Lua"),
        (change_pre_function, "plugins[0].config.access", "only the bearer token pre-function"),
        (
            lambda config: post_function(config)["config"].update(log=["kong.log('hi')"]),
            "plugins[1].config.log",
            "outside the access phase",
        ),
        (add_to_route("pre-function"), "services[0].routes[2].plugins[1]", "isn't global"),
        (add_route_post_function, "services[0].routes[2].plugins[1]", "isn't global"),
        (old_post_function, "plugins[1].config.access", "cannot translate this Lua"),
        # correlation-id
        (drop_plugin_field("correlation-id", "generator"), "plugins[2].config.generator", "only uuid"),
        (set_plugin("correlation-id", generator="tracker"), "plugins[2].config.generator", "only uuid"),
        (set_plugin("correlation-id", header_name="X_Request_ID"), "plugins[2].config.header_name", "X_Request_ID"),
        (set_plugin("correlation-id", echo_downstream="yes"), "echo_downstream", "true or false"),
        (add_to_route("correlation-id"), "services[0].routes[2].plugins[1]", "isn't global"),
        # rate-limiting
        (drop_rate_limit("limit_by"), "services[0].routes[1].plugins[0].config.limit_by", "only ip"),
        (set_rate_limit(limit_by="consumer"), "limit_by", "only ip"),
        (set_rate_limit(policy="redis"), "policy", "only local"),
        (set_rate_limit(hour=1000), "services[0].routes[1].plugins[0].config.hour", "per-minute"),
        (set_rate_limit(second=5), "config.second", "per-minute"),
        (set_rate_limit(minute=0), "config.minute", "at least 1"),
        (set_rate_limit(minute=1.5), "config.minute", "whole number"),
        (drop_rate_limit("minute"), "config.minute", "whole number"),
        (set_rate_limit(error_code=200), "config.error_code", "400 to 599"),
        (set_rate_limit(error_message="cost: $5"), "config.error_message", "without $"),
        (set_rate_limit(redis={"host": "redis"}), "(rate-limiting)", "field 'redis'"),
        (set_rate_limit(fault_tolerant="no"), "config.fault_tolerant", "true or false"),
        # request-size-limiting
        (set_plugin("request-size-limiting", size_unit="gigabytes"), "plugins[3].config.size_unit", "gigabytes"),
        (set_plugin("request-size-limiting", allowed_payload_size=-1), "allowed_payload_size", "at least 0"),
        (set_plugin("request-size-limiting", allowed_payload_size="1"), "allowed_payload_size", "whole number"),
        (add_to_route("request-size-limiting"), "services[0].routes[2].plugins[1]", "isn't global"),
        # response-transformer
        (set_plugin("response-transformer", rename={"headers": ["Server:X-Server"]}), "rename.headers", "renaming"),
        (set_plugin("response-transformer", add={"json": ["a:1"]}), "add.json", "header changes only"),
        (set_plugin("response-transformer", add={"headers": ["X-Frame-Options"]}), "add.headers[0]", "name:value"),
        (set_plugin("response-transformer", add={"headers": ["X-A:"]}), "add.headers[0]", "name:value"),
        (set_plugin("response-transformer", append={"headers": ["X-Cost:$5"]}), "append.headers[0]", "without $"),
        (set_plugin("response-transformer", remove={"headers": ["X_Powered_By"]}), "remove.headers[0]", "X_Powered"),
        (set_plugin("response-transformer", add={"headers": "X-A:1"}), "add.headers", "expected a list"),
        # prometheus
        (set_plugin("prometheus", per_consumer=True), "plugins[5].config.per_consumer", "no consumers"),
        (set_plugin("prometheus", ai_metrics=True), "plugins[5].config (prometheus)", "field 'ai_metrics'"),
        (add_to_route("prometheus"), "services[0].routes[2].plugins[1]", "isn't global"),
        (set_credential(algorithm="RS256"), "consumers[0].jwt_secrets[0].algorithm", "only HMAC"),
        (set_credential(rsa_public_key="-----BEGIN PUBLIC KEY-----"), "consumers[0].jwt_secrets[0]", "rsa_public_key"),
        (set_credential(secret="${JWT_SECRET}"), "consumers[0].jwt_secrets[0].secret", "render the config first"),
        (set_route("users-token", name="users-register"), "", "duplicate route name 'users-register'"),
    ],
)
def test_what_cannot_be_translated_is_refused(make_config, jwt_secret, change, where, says):
    config = make_config()
    change(config)

    with pytest.raises(ConfigError) as refused:
        generate_haproxy_config(config, UPSTREAMS)

    message = str(refused.value)
    assert where in message
    assert says in message
    assert jwt_secret not in message


def test_a_service_without_an_upstream_address_is_refused(kong_config):
    upstreams = {name: address for name, address in UPSTREAMS.items() if name != "orders"}

    with pytest.raises(ConfigError, match="service 'orders' has no upstream address"):
        generate_haproxy_config(kong_config, upstreams)


def test_an_upstream_for_no_service_is_refused(kong_config):
    # Most likely a typo, which would leave the real service without one.
    with pytest.raises(ConfigError, match="'order', which is not a service"):
        generate_haproxy_config(kong_config, {**UPSTREAMS, "order": "127.0.0.1:8104"})


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:80 # x", "host:port"])
def test_a_malformed_address_is_refused(kong_config, address):
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        generate_haproxy_config(kong_config, {**UPSTREAMS, "users": address})
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        generate_haproxy_config(kong_config, UPSTREAMS, bind=address)
