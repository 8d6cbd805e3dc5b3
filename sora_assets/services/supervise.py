"""Run a server tree (e.g. `dagster dev`) so that stopping us stops all of it.

`dagster dev` starts a webserver, a daemon and a code server; when its parent is SIGTERMed they keep running
(their parent is not signalled). So the child gets its own process group, and SIGTERM/SIGINT/SIGHUP sent to us
are forwarded to that whole group; after a grace period the group is SIGKILLed. Hand-written: the standard
library has the pieces (start_new_session, killpg) but no supervisor, and adding one (supervisor, circus) for a
single child would be a daemon of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def stop_group(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the child's group, wait for the child, then SIGKILL whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):  # grandchildren that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class _Stopped(Exception):
    """Raised from the signal handler to leave `wait()` at once."""


def run_group(command: Sequence[str], env: Mapping[str, str], grace_s: float = 20.0) -> int:
    """Run `command` in its own process group until it exits or we are signalled; returns its exit code
    (128 + signal number when we were stopped by a signal)."""
    process = subprocess.Popen(list(command), env=dict(env), start_new_session=True)
    received: list[int] = []

    def record(signum: int, _frame: object) -> None:
        received.append(signum)

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        for s in FORWARDED:  # a second signal while stopping must not interrupt the stop
            signal.signal(s, record)
        raise _Stopped

    previous = {s: signal.signal(s, stop) for s in FORWARDED}
    try:
        try:
            code = process.wait()
        except _Stopped:
            stop_group(process, grace_s)
            return 128 + received[0]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the child exited on its own: leave nothing behind
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
