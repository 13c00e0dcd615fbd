"""What every background process (event workers, outbox relays) shares: a clean
stop on SIGTERM, pauses that a stop cuts short, a heartbeat file for healthchecks,
and the `--healthcheck` command line."""
import argparse
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

    def beat(self) -> None:
        if self.heartbeat_path:
            with open(self.heartbeat_path, "a"):
                os.utime(self.heartbeat_path)


def heartbeat_is_fresh(path: str, max_age: float = HEARTBEAT_MAX_AGE) -> bool:
    try:
        return time.time() - os.path.getmtime(path) <= max_age
    except OSError:  # no heartbeat file yet: the loop never started
        return False


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
        return 0 if heartbeat_is_fresh(heartbeat_path) else 1
    serve(heartbeat_path)
    return 0
