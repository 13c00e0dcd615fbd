"""What every background process (event workers, outbox relays) shares: a clean
stop on SIGTERM, pauses that a stop cuts short, a heartbeat file for healthchecks,
and the `--healthcheck` command line."""
import argparse
import json
import logging
import os
import signal
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

# Loops beat at least once a second while healthy; allow for a slow database round trip.
HEARTBEAT_MAX_AGE = 15.0


class GracefulLoop:
    """Mixin: `should_stop`, `stop()`, `pause()` and `beat()` for a long-running loop."""

    def __init__(self, heartbeat_path: str | None = None):
        self.should_stop = False
        self.heartbeat_path = heartbeat_path
        self._wake = threading.Event()
        self._last_beat = (0.0, None)

    def stop(self, *_signal_args) -> None:
        """SIGTERM/SIGINT: finish the item in hand, then leave the loop."""
        log.info("stopping after the current item")
        self.should_stop = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def pause(self, seconds: float) -> None:
        """Sleep, unless asked to stop meanwhile."""
        self._wake.wait(seconds)

    def beat(self, problem: str | None = None) -> None:
        """Proof of life for healthchecks, and readiness: `problem` names the
        dependency that is failing (None when all is well). Written at most once a
        second, or at once when the problem changes."""
        now = time.monotonic()
        last_at, last_problem = self._last_beat
        if not self.heartbeat_path or (now - last_at < 1.0 and problem == last_problem):
            return
        self._last_beat = (now, problem)
        # Written aside and renamed: a reader never sees half a file.
        partial = f"{self.heartbeat_path}.partial"
        with open(partial, "w") as file:
            json.dump({"problem": problem}, file)
        os.replace(partial, self.heartbeat_path)


def readiness(path: str, max_age: float = HEARTBEAT_MAX_AGE) -> str | None:
    """None if the loop behind `path` is alive and ready, else why not."""
    try:
        age = time.time() - os.path.getmtime(path)
        with open(path) as file:
            problem = json.load(file).get("problem")
    except (OSError, ValueError):  # no heartbeat yet, or unreadable
        return "not started"
    if age > max_age:
        return f"no heartbeat for {age:.0f}s"
    return problem


def backoff(attempt: int, *, cap: float = 5.0) -> float:
    """0.5, 1, 2, 4, 5, 5, … seconds (never more than `cap`)."""
    return min(0.5 * 2 ** max(attempt - 1, 0), cap)


def run_process(name: str, description: str, serve: Callable[[str], None]) -> int:
    """The command line of a background process: run it, or with --healthcheck
    report whether a running one is alive. `serve` gets the heartbeat path."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=description)
    parser.add_argument("--healthcheck", action="store_true", help="exit 0 if the running process is alive")
    args = parser.parse_args()
    # The default serves containers, where /tmp is the process's own; the native
    # stack passes a path under var/run.
    heartbeat_path = os.environ.get("HEARTBEAT_FILE", f"/tmp/{name}.alive")  # nosec B108 - see above
    if args.healthcheck:
        problem = readiness(heartbeat_path)
        if problem:
            print(f"not ready: {problem}")
            return 1
        print("ready")
        return 0
    serve(heartbeat_path)
    return 0
