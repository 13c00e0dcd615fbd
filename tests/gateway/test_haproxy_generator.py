"""The HAProxy generator: its output for kong.yml is a valid HAProxy config, and
whatever in kong.yml it can't translate is refused with a message naming it."""
import subprocess

import pytest

from kong.errors import ConfigError
from kong.haproxy import generate_haproxy_config
from kong.model import KNOWN_POST_FUNCTION_LUA, parse

UPSTREAMS = {"users": "127.0.0.1:8101", "products": "127.0.0.1:8102", "orders": "127.0.0.1:8103"}


def service(config: dict, name: str) -> dict:
    return next(node for node in config["services"] if node["name"] == name)


def route(config: dict, name: str) -> dict:
    return next(node for svc in config["services"] for node in svc["routes"] if node["name"] == name)


def jwt_config(config: dict, route_name: str) -> dict:
    return next(plugin for plugin in route(config, route_name)["plugins"] if plugin["name"] == "jwt")["config"]


def post_function(config: dict) -> dict:
    return next(plugin for plugin in config["plugins"] if plugin["name"] == "post-function")


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


def test_the_post_function_lua_is_recognised_whatever_its_indentation(make_config):
    config = make_config()
    post_function(config)["config"]["access"] = ["\n".join(line.strip() for line in KNOWN_POST_FUNCTION_LUA.splitlines())]

    assert parse(config).user_id_from_sub


def change_lua(config):
    post_function(config)["config"]["access"][0] += 'kong.service.request.set_header("X-Admin", "1")\n'


def add_route_post_function(config):
    route(config, "users-me")["plugins"].append(post_function(config))


def add_route_plugin(config):
    route(config, "products-list")["plugins"] = [{"name": "rate-limiting", "config": {"minute": 5}}]


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
        (add_route_plugin, "services[1].routes[0].plugins[0]", "cannot translate plugin 'rate-limiting'"),
        (
            lambda config: config["plugins"].append({"name": "cors", "config": {}}),
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
        (change_lua, "plugins[0].config.access", "cannot translate this Lua"),
        (
            lambda config: post_function(config)["config"].update(log=["kong.log('hi')"]),
            "plugins[0].config.log",
            "outside the access phase",
        ),
        (add_route_post_function, "services[0].routes[2].plugins[1]", "isn't global"),
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
