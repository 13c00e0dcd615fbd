"""The two commands and their helpers work on hosts other than this one: each mode
installs only what it needs, and the shell scripts avoid what old bash can't run."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELL_SCRIPTS = [
    path for path in (ROOT / "scripts").iterdir() if path.read_text(errors="replace").startswith("#!/usr/bin/env bash")
]


@pytest.fixture
def bare_path(tmp_path):
    """A PATH with python3, the basic tools and a fake `docker` (which answers
    `docker compose version`), but no Kong, decK, wrk or apt-get: a Docker
    user's macOS or Fedora, as far as the scripts can tell."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "cat", "id", "dirname", "awk", "mkdir", "tail", "env"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    # The interpreter itself, not a version manager's shim that needs its own PATH.
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\n[ "$1 $2" = "compose version" ] && echo "Docker Compose version v2.40.3"\n')
    docker.chmod(0o755)
    return str(bin_dir)


def run(*argv, path):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PATH": path})


def test_docker_mode_needs_no_native_tools(bare_path):
    # .venv is current (scripts/test made it), so this only checks the host tools.
    result = run("scripts/bootstrap", "docker", path=bare_path)

    assert result.returncode == 0, result.stderr
    assert "installing" not in result.stdout + result.stderr


def test_native_mode_says_what_to_install_where_there_is_no_apt(bare_path):
    result = run("scripts/bootstrap", "native", path=bare_path)

    assert result.returncode == 1
    assert "deck" in result.stderr and "package manager" in result.stderr


@pytest.fixture
def test_tools_path(bare_path):
    """bare_path with the native tests' Debian tools (stand-ins that are never run)."""
    for tool in ("deck", "chromium", "promtool"):
        (Path(bare_path) / tool).write_text("#!/bin/sh\nexit 0\n")
        (Path(bare_path) / tool).chmod(0o755)
    return bare_path


def fake_kong(path: str, version: str) -> None:
    kong = Path(path) / "kong"
    kong.write_text(f'#!/bin/sh\n[ "$1" = version ] && echo {version}\n')
    kong.chmod(0o755)


def test_native_mode_without_kong_says_how_to_get_it_and_starts_nothing(test_tools_path):
    for command in (["scripts/bootstrap", "native"], ["scripts/stack", "up", "--native"]):
        result = run(*command, path=test_tools_path)

        assert result.returncode == 1, command
        assert "Kong Gateway 3.9" in result.stderr and "KONG_TARBALL" in result.stderr
        assert "scripts/stack up --docker" in result.stderr
        assert "native stack up" not in result.stdout


def test_native_mode_refuses_another_kong_version(test_tools_path):
    fake_kong(test_tools_path, "3.8.1")

    result = run("scripts/bootstrap", "native", path=test_tools_path)

    assert result.returncode == 1
    assert "is Kong 3.8.1; the project runs Kong 3.9.x" in result.stderr


def test_native_mode_takes_kong_3_9(test_tools_path):
    fake_kong(test_tools_path, "3.9.3")

    result = run("scripts/bootstrap", "native", path=test_tools_path)

    assert result.returncode == 0, result.stderr


def test_docker_mode_without_compose_says_so(bare_path):
    (Path(bare_path) / "docker").unlink()

    result = run("scripts/bootstrap", "docker", path=bare_path)

    assert result.returncode == 1
    assert "Docker with Compose v2" in result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_bash_scripts_expand_no_arrays(script):
    # bash 3.2 (macOS) aborts on "${empty[@]}" under `set -u`; "$@" is exempt.
    code = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if re.search(r"\$\{[A-Za-z_]+\[@\]", line)], f"{script.name} expands an array"


def test_stack_without_a_command_prints_its_usage():
    result = subprocess.run(["scripts/stack", "--native"], cwd=ROOT, capture_output=True, text=True, timeout=30)

    assert result.returncode == 2
    assert "usage: scripts/stack" in result.stderr


def test_the_stack_ends_quietly_when_its_reader_goes():
    # `scripts/stack status | head -1`: the reader is gone before the output is
    # written; the stack ends as `cat` would, by SIGPIPE, with no traceback.
    proc = subprocess.Popen(
        ["scripts/stack", "status", "--native"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=30)

    assert proc.returncode == -signal.SIGPIPE, stderr.decode()
    assert b"Traceback" not in stderr


def test_the_stack_knows_when_its_code_changed(tmp_path):
    # `scripts/stack up` restarts a running native stack whose fingerprint differs,
    # so that `scripts/test` never runs against processes started from old code.
    sys.path.insert(0, str(ROOT / "scripts"))  # as scripts/stack runs it
    from native_stack import code_fingerprint

    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "placing.py").write_text("A = 1\n")
    (tmp_path / "kong.yml").write_text("_format_version: '3.0'\n")
    started_from = code_fingerprint(tmp_path)

    (tmp_path / "orders" / "__pycache__").mkdir()
    (tmp_path / "orders" / "__pycache__" / "placing.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "orders.log").write_text("a log line\n")
    assert code_fingerprint(tmp_path) == started_from  # byte code and logs aren't code

    (tmp_path / "orders" / "placing.py").write_text("A = 2\n")
    assert code_fingerprint(tmp_path) != started_from
    (tmp_path / "orders" / "placing.py").write_text("A = 1\n")
    (tmp_path / "orders" / "cancelling.py").write_text("")
    assert code_fingerprint(tmp_path) != started_from  # a new module counts too
