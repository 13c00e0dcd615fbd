"""Rendering kong.yml for real Kong: placeholders filled in from the environment,
each service balanced over the addresses given (--upstream), the result private
to its owner, and the secret never printed."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kong import settings
from kong.config import load, render, with_upstreams, write_rendered
from kong.errors import ConfigError
from tests.gateway.conftest import KONG

ROOT = Path(__file__).resolve().parents[2]
UPSTREAMS = [
    "--upstream=users=127.0.0.1:8101",
    "--upstream=products=127.0.0.1:8102,127.0.0.1:8202",  # two copies
    "--upstream=orders=127.0.0.1:8103",
]


def credential(config: dict) -> dict:
    return config["consumers"][0]["jwt_secrets"][0]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """python -m kong from the repo root, JWT_SECRET set only if `env` sets it."""
    environment = {name: value for name, value in os.environ.items() if name != "JWT_SECRET"}
    return subprocess.run(
        [sys.executable, "-m", "kong", *args],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kong_yml_keeps_the_secret_out_as_a_placeholder(kong_yml):
    assert credential(load(kong_yml))["secret"] == "${JWT_SECRET}"


def test_the_placeholder_is_filled_in_from_the_given_environment(kong_yml, jwt_secret):
    config = render(load(kong_yml), {"JWT_SECRET": jwt_secret})

    assert credential(config)["secret"] == jwt_secret


def test_rendering_leaves_the_loaded_config_unchanged(kong_yml, jwt_secret):
    loaded = load(kong_yml)

    render(loaded, {"JWT_SECRET": jwt_secret})

    assert credential(loaded)["secret"] == "${JWT_SECRET}"


def test_the_environment_is_the_default_source(kong_yml, jwt_secret, monkeypatch):
    monkeypatch.setenv("JWT_SECRET", jwt_secret)

    assert credential(render(load(kong_yml)))["secret"] == jwt_secret


def test_a_missing_variable_is_an_error_naming_it_and_where_it_is_used(kong_yml):
    with pytest.raises(ConfigError, match=r"consumers\[0\]\.jwt_secrets\[0\]\.secret: .*JWT_SECRET is not set"):
        render(load(kong_yml), {})


def test_an_empty_variable_is_an_error(kong_yml):
    with pytest.raises(ConfigError, match="JWT_SECRET is empty"):
        render(load(kong_yml), {"JWT_SECRET": ""})


def test_a_placeholder_must_be_the_whole_value():
    config = {"consumers": [{"jwt_secrets": [{"secret": "prefix-${JWT_SECRET}"}]}]}

    with pytest.raises(ConfigError, match="must be the whole value"):
        render(config, {"JWT_SECRET": "x"})


def test_invalid_yaml_is_reported_by_line_without_quoting_the_file(tmp_path):
    broken = tmp_path / "kong.yml"
    broken.write_text("consumers:\n  - secret: 'hunter2\n")

    with pytest.raises(ConfigError, match=r"line \d+") as refused:
        load(broken)
    assert "hunter2" not in str(refused.value)


def test_the_rendered_file_is_private_and_reads_back_as_the_rendered_config(kong_yml, jwt_secret, tmp_path):
    config = render(load(kong_yml), {"JWT_SECRET": jwt_secret})
    target = tmp_path / "kong.yml"

    write_rendered(config, target)

    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert load(target) == config
    assert "*id" not in target.read_text()  # YAML anchors resolved, not written as aliases


def test_the_cli_renders_for_kong(kong_yml, jwt_secret, tmp_path):
    target = tmp_path / "kong.yml"

    result = run_cli("render", "--config", str(kong_yml), "--out", str(target), env={"JWT_SECRET": jwt_secret})

    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""
    assert credential(yaml.safe_load(target.read_text()))["secret"] == jwt_secret


def test_the_cli_balances_each_named_service_over_its_addresses(kong_yml, jwt_secret, tmp_path):
    target = tmp_path / "kong.yml"

    result = run_cli(
        "render", "--config", str(kong_yml), "--out", str(target), *UPSTREAMS, env={"JWT_SECRET": jwt_secret}
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""
    rendered = yaml.safe_load(target.read_text())
    assert rendered["upstreams"] == [
        {"name": "users", "targets": [{"target": "127.0.0.1:8101"}]},
        {"name": "products", "targets": [{"target": "127.0.0.1:8102"}, {"target": "127.0.0.1:8202"}]},
        {"name": "orders", "targets": [{"target": "127.0.0.1:8103"}]},
    ]
    # The services keep their hosts: an upstream of the same name takes precedence over DNS.
    assert [service["url"] for service in rendered["services"]] == [
        service["url"] for service in load(kong_yml)["services"]
    ]


def test_without_upstreams_the_cli_adds_none(kong_yml, jwt_secret, tmp_path):
    target = tmp_path / "kong.yml"

    run_cli("render", "--config", str(kong_yml), "--out", str(target), env={"JWT_SECRET": jwt_secret})

    assert yaml.safe_load(target.read_text()).get("upstreams", []) == []


def test_the_cli_writes_the_config_privately(kong_yml, jwt_secret, tmp_path):
    target = tmp_path / "kong.yml"

    result = run_cli(
        "render", "--config", str(kong_yml), "--out", str(target), *UPSTREAMS, env={"JWT_SECRET": jwt_secret}
    )

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_upstream_for_a_host_no_service_has_is_refused(kong_config):
    # Most likely a typo, which would leave the real service on its compose name.
    with pytest.raises(ConfigError, match="no service in kong.yml has the host order$"):
        with_upstreams(kong_config, {"order": ["127.0.0.1:8104"]})


def test_adding_upstreams_leaves_the_config_unchanged(kong_config):
    with_upstreams(kong_config, {"users": ["127.0.0.1:8101"]})

    assert "upstreams" not in kong_config


@pytest.mark.integration
def test_kong_accepts_the_rendered_config_with_upstreams(kong_yml, jwt_secret, tmp_path):
    # What scripts/native_kong.py checks before it restarts Kong: `kong config parse`.
    target = tmp_path / "kong.yml"
    run_cli("render", "--config", str(kong_yml), "--out", str(target), *UPSTREAMS, env={"JWT_SECRET": jwt_secret})
    environment = {name: value for name, value in os.environ.items() if not name.startswith("KONG_")}

    result = subprocess.run(
        [KONG, "config", "parse", str(target)],
        env={**environment, **settings.load(), "KONG_PREFIX": str(tmp_path / "prefix")},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert jwt_secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["render", "--out", "{tmp}/kong.yml"], "JWT_SECRET is not set"),
        (["render", "--config", "{tmp}/missing.yml", "--out", "{tmp}/kong.yml"], "cannot read"),
        (["render", "--out", "{tmp}/no/such/dir/kong.yml"], "cannot write"),
        (
            ["render", "--out", "{tmp}/kong.yml", "--upstream=order=127.0.0.1:8104"],
            "no service in kong.yml has the host",
        ),
        (["render", "--out", "{tmp}/kong.yml", "--upstream", "users"], "expected SERVICE=HOST:PORT"),
        (["render", "--out", "{tmp}/kong.yml", "--upstream", "=127.0.0.1:8101"], "expected SERVICE=HOST:PORT"),
        (["render", "--out", "{tmp}/kong.yml", "--upstream", "users="], "expected SERVICE=HOST:PORT"),
        (
            ["render", "--out", "{tmp}/kong.yml", "--upstream=users=127.0.0.1:8101", "--upstream=users=127.0.0.1:8201"],
            "'users' given twice",
        ),
    ],
    ids=["no-secret", "no-config", "no-out-dir", "unknown-host", "no-address", "no-service", "empty-address", "twice"],
)
def test_cli_errors_are_one_line_exit_2_and_never_show_the_secret(jwt_secret, tmp_path, args, says):
    secret_env = {} if says == "JWT_SECRET is not set" else {"JWT_SECRET": jwt_secret}

    result = run_cli(*(arg.format(tmp=tmp_path) for arg in args), env=secret_env)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert "Traceback" not in result.stderr
    assert jwt_secret not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_the_haproxy_command_is_gone(jwt_secret, tmp_path):
    result = run_cli("haproxy", "--out", str(tmp_path / "haproxy.cfg"), env={"JWT_SECRET": jwt_secret})

    assert result.returncode == 2
    assert "invalid choice: 'haproxy'" in result.stderr
