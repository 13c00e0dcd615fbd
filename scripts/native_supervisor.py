"""The native stack's process manager: supervisord, driven over its XML-RPC socket.

supervisord (from PyPI, in .venv) does for the native stack what Docker's
`restart: unless-stopped` and Kubernetes do for containers: it starts every
process, restarts one that dies (a SIGKILL, a crash), keeps a log per process
and answers `supervisorctl` (var/run/supervisor.sock). This module writes its
config from the stack's process list and asks it to act; nothing here tracks a
pid by hand.

    .venv/bin/supervisorctl -c var/run/supervisord.conf status
"""

import os
import shlex
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Protocol

from supervisor.xmlrpc import SupervisorTransport

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "var" / "run"
LOGS = ROOT / "var" / "log"
CONFIG = RUN / "supervisord.conf"
SOCKET = RUN / "supervisor.sock"
BIN = Path(sys.executable).parent
START_DEADLINE = 15.0
# A process's stop signal, then SIGKILL this much later (Docker waits 10 s).
STOP_WAIT_SECONDS = 15
# A process that dies before it has run this long is retrying a failed start
# (supervisord backs off 1, 2, 3... s between tries); one that ran longer is
# restarted at once. As under Docker and Kubernetes, it never gives up for good.
START_SECONDS = 1
START_RETRIES = 1000
RPC_INTERFACE = "supervisor.rpcinterface:make_main_rpcinterface"


class Program(Protocol):
    """What supervisord needs of a process (native_stack.Proc has it)."""

    name: str
    argv: list[str]
    env: dict
    stop_signal: str  # TERM, QUIT, ...
    logfile: Path


def write_config(programs: list[Program]) -> None:
    """var/run/supervisord.conf for these programs, private (it holds the jwt secret)."""
    sections = [
        ("unix_http_server", {"file": SOCKET, "chmod": "0700"}),
        (
            "supervisord",
            {
                "logfile": LOGS / "supervisord.log",
                "pidfile": RUN / "supervisord.pid",
                "directory": ROOT,
                "childlogdir": LOGS,
            },
        ),
        ("rpcinterface:supervisor", {"supervisor.rpcinterface_factory": RPC_INTERFACE}),
        ("supervisorctl", {"serverurl": f"unix://{SOCKET}"}),
    ]
    for program in programs:
        sections.append(
            (
                f"program:{program.name}",
                {
                    "command": shlex.join(program.argv),
                    "directory": ROOT,
                    "environment": ",".join(f"{name}={_quoted(value)}" for name, value in program.env.items()),
                    "stdout_logfile": program.logfile,
                    "stdout_logfile_maxbytes": "50MB",
                    "stdout_logfile_backups": 2,
                    "redirect_stderr": "true",
                    "autorestart": "true",
                    "startsecs": START_SECONDS,
                    "startretries": START_RETRIES,
                    "stopsignal": program.stop_signal,
                    "stopwaitsecs": STOP_WAIT_SECONDS,
                    # Gunicorn's workers, Kong's nginx workers: the whole group goes.
                    "stopasgroup": "true",
                    "killasgroup": "true",
                },
            )
        )
    text = "".join(
        f"[{title}]\n" + "".join(f"{key}={_escaped(str(value))}\n" for key, value in items.items()) + "\n"
        for title, items in sections
    )
    descriptor = os.open(CONFIG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def _quoted(value: str) -> str:
    # supervisord splits `environment` with shlex: a quoted value may hold commas.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escaped(value: str) -> str:
    # supervisord expands %(name)s in every value: a literal % is %%.
    return value.replace("%", "%%")


def rpc():
    """supervisord's XML-RPC interface (supervisor.*), over its private UNIX socket."""
    transport = SupervisorTransport(None, None, f"unix://{SOCKET}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def running() -> bool:
    try:
        return rpc().getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Fault):  # no socket, or nobody behind it
        return False


def start_daemon() -> None:
    """Start supervisord, which starts every program; returns once it answers."""
    subprocess.run([str(BIN / "supervisord"), "-c", str(CONFIG)], check=True, cwd=ROOT)
    deadline = time.monotonic() + START_DEADLINE
    while not running():
        if time.monotonic() > deadline:
            sys.exit(f"supervisord did not answer within {START_DEADLINE:.0f}s (see {LOGS}/supervisord.log)")
        time.sleep(0.1)


def shutdown() -> bool:
    """Stop every program and supervisord itself; False if it wasn't running."""
    if not running():
        return False
    pid = int((RUN / "supervisord.pid").read_text())
    rpc().shutdown()
    deadline = time.monotonic() + STOP_WAIT_SECONDS + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def apply_config() -> list[str]:
    """Make a running supervisord take the config as written: programs added or
    changed are (re)started, removed ones stopped. Returns the names it restarted
    or stopped, as `supervisorctl update` would."""
    server = rpc()
    [[added, changed, removed]] = server.reloadConfig()
    for name in changed + removed:
        server.stopProcessGroup(name)
        server.removeProcessGroup(name)
    for name in changed + added:
        server.addProcessGroup(name)  # autostart: it starts now
    return changed + removed


def states() -> dict[str, dict]:
    """Every program's info (statename, pid, ...) by name."""
    return {info["name"]: info for info in rpc().getAllProcessInfo()}


def pid(name: str) -> int | None:
    info = states().get(name)
    return info["pid"] if info and info["statename"] in ("RUNNING", "STARTING") and info["pid"] else None


def stopped(names: list[str]) -> list[str]:
    """Those of `names` that neither run nor are starting, from one look: in
    BACKOFF supervisord is between two tries, and tries again by itself."""
    current = states()
    return [name for name in names if current[name]["statename"] not in ("RUNNING", "STARTING", "BACKOFF")]


def start(name: str) -> None:
    rpc().startProcess(name, False)


def restart(name: str) -> None:
    stop(name)
    start(name)


def stop(name: str) -> bool:
    """Stop it (its stop signal, SIGKILL after STOP_WAIT_SECONDS); False if it wasn't running."""
    if pid(name) is None:
        return False
    rpc().stopProcess(name, True)
    return True


def kill(name: str) -> bool:
    """SIGKILL it and leave it stopped: a crash that `start` recovers from, as
    `docker kill` is under compose. (A process that dies by itself is restarted.)

    supervisord has no "kill and don't restart". So the process group is frozen
    first (SIGSTOP), then told to stop: the stop signal stays pending, unhandled,
    while supervisord marks the process as stopping; SIGKILL then ends it in the
    middle of whatever it was doing, and supervisord, which meant to stop it,
    does not restart it."""
    target = pid(name)
    if target is None:
        return False
    os.killpg(target, signal.SIGSTOP)
    rpc().stopProcess(name, False)
    os.killpg(target, signal.SIGKILL)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while states()[name]["statename"] == "STOPPING" and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _alive(target: int) -> bool:
    try:
        os.kill(target, 0)
    except ProcessLookupError:
        return False
    return True
