"""Rendering kong.yml for real Kong: placeholders filled in from the environment,
the result private to its owner, and the secret never printed."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kong.config import load, render, write_rendered
from kong.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
UPSTREAMS = [
    "--upstream=users=127.0.0.1:8101",
    "--upstream=products=127.0.0.1:8102",
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


def test_the_cli_takes_the_metrics_address(jwt_secret, tmp_path):
    target = tmp_path / "haproxy.cfg"

    result = run_cli(
        "haproxy", "--out", str(target), "--metrics-bind", "127.0.0.1:19405", *UPSTREAMS, env={"JWT_SECRET": jwt_secret}
    )

    assert result.returncode == 0, result.stderr
    assert "frontend metrics\n    bind 127.0.0.1:19405\n" in target.read_text()


def test_the_cli_writes_the_haproxy_config_privately(jwt_secret, tmp_path):
    target = tmp_path / "haproxy.cfg"

    result = run_cli("haproxy", "--out", str(target), *UPSTREAMS, env={"JWT_SECRET": jwt_secret})

    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "args, says",
    [
        (["render", "--out", "{tmp}/kong.yml"], "JWT_SECRET is not set"),
        (["render", "--config", "{tmp}/missing.yml", "--out", "{tmp}/kong.yml"], "cannot read"),
        (["render", "--out", "{tmp}/no/such/dir/kong.yml"], "cannot write"),
        (["haproxy", "--out", "{tmp}/haproxy.cfg", "--upstream=users=127.0.0.1:8101"], "has no upstream address"),
        (["haproxy", "--out", "{tmp}/haproxy.cfg", "--upstream", "users"], "expected SERVICE=HOST:PORT"),
        (["haproxy", "--out", "{tmp}/haproxy.cfg", *UPSTREAMS, "--metrics-bind", "0.0.0.0:8405"], "loopback"),
    ],
    ids=["no-secret", "no-config", "no-out-dir", "no-upstream", "bad-upstream", "public-metrics"],
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
