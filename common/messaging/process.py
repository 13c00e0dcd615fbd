"""What every background process (event workers, outbox relays) shares: a clean
stop on SIGTERM, waits that a stop cuts short, a heartbeat file for
healthchecks, and the command line with `--healthcheck`."""

import argparse
import json
import logging
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable

from common.settings import Settings

log = logging.getLogger(__name__)

# Loops beat at least once a second while healthy; allow for a slow database round trip.
HEARTBEAT_MAX_AGE = 15.0


class Loop:
    """Base of a long-running loop: `should_stop`, `stop()`, `pause()`, `wait_readable()`
    and `beat()`."""

    def __init__(self, heartbeat_path: str | None = None):
        self.should_stop = False
        self.heartbeat_path = heartbeat_path
        self._stopped = threading.Event()
        # A pipe that stop() writes to, so a wait on a socket ends at once too.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._last_beat = (0.0, None)

    def stop(self, *_signal_args) -> None:
        """SIGTERM/SIGINT: finish the work in hand, then leave the loop."""
        log.info("stopping after the work in hand")
        self.should_stop = True
        self._stopped.set()
        try:
            os.write(self._wake_write, b"x")
        except BlockingIOError:  # already woken
            pass

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def pause(self, seconds: float) -> None:
        """Sleep, unless asked to stop meanwhile."""
        self._stopped.wait(seconds)

    def wait_readable(self, fileno: int, seconds: float) -> bool:
        """Wait until `fileno` has data, at most `seconds`; True if it has. A stop ends the wait."""
        with selectors.DefaultSelector() as selector:
            selector.register(fileno, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            ready = {key.fileobj for key, _ in selector.select(seconds)}
        return fileno in ready

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

    def close(self) -> None:
        os.close(self._wake_read)
        os.close(self._wake_write)


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


def run_process(name: str, doc: str, serve: Callable[[str], None]) -> int:
    """The command line of background process `name` ("products.worker"): run it,
    or with --healthcheck report whether a running one is alive. `serve` gets
    the heartbeat path."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=doc.strip().splitlines()[0])
    parser.add_argument("--healthcheck", action="store_true", help="exit 0 if the running process is alive")
    args = parser.parse_args()
    settings = Settings.from_env(name.split(".")[0])
    # The default serves containers, where /tmp is the process's own; the native
    # stack sets HEARTBEAT_FILE to a path under var/run.
    heartbeat_path = settings.heartbeat_file or f"/tmp/{name}.alive"  # nosec B108 - see above
    if args.healthcheck:
        problem = readiness(heartbeat_path)
        print("ready" if problem is None else f"not ready: {problem}")
        return 0 if problem is None else 1
    serve(heartbeat_path)
    return 0
