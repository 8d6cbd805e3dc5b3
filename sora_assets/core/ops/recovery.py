"""Which runs a crash left behind: STARTED in the run storage (SQLite or Postgres) with no process.

After a power loss (or every process of `dagster dev` killed at once) nothing marks those runs failed:
the DefaultRunLauncher cannot health-check a run worker, so run monitoring only ends them at their
max runtime, and the `gpu` pool slots their steps claimed stay claimed until then. `sora-assets recover`
asks this module which runs are dead, marks them failed, frees their slots and backfills.

Process liveness is read from /proc (Linux) rather than psutil, which is only a test dependency here:
a pid counts as the run's worker only if it is alive AND started no later than the run did (after a
reboot pids are reused, and a new process with the old pid is not the run's worker).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

LIVE_STATUSES = ("STARTING", "STARTED", "CANCELING")
NO_PID_GRACE_S = 120.0  # a run launched this recently may not have reported its worker's pid yet


@dataclass(frozen=True)
class RunProcess:
    run_id: str
    status: str  # DagsterRunStatus value
    pid: int | None  # the run worker's pid (from its RUN_START event), None if it never started
    started_at: float | None  # epoch seconds the run (or its launch) began
    partition_key: str | None = None


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_start_time(pid: int) -> float | None:
    """Epoch seconds process `pid` started, from /proc/<pid>/stat (None if gone or unknown)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces and parentheses
    boot = _boot_time()
    if boot is None:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime in clock ticks


def process_alive(pid: int, not_after: float | None = None) -> bool:
    """True if `pid` runs now and (when `not_after` is given) started no later than that, with 2 s of slack."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if not_after is None:
        return True
    started = process_start_time(pid)
    return started is None or started <= not_after + 2.0


def dead_runs(runs: Iterable[RunProcess], now: float,
              alive: Callable[[int, float | None], bool] = process_alive) -> list[RunProcess]:
    """Runs the storage says are in progress whose worker process is gone."""
    dead = []
    for run in runs:
        if run.status not in LIVE_STATUSES:
            continue
        if run.pid is None:
            if run.started_at is not None and now - run.started_at < NO_PID_GRACE_S:
                continue  # just launched: its worker may still be starting
            dead.append(run)
        elif not alive(run.pid, run.started_at):
            dead.append(run)
    return dead


def runs_holding_slots_after_they_ended(claimed_run_ids: Iterable[str], finished_run_ids: Iterable[str]) -> set[str]:
    """Runs whose pool slots must be freed: they claimed a slot and are over."""
    return set(claimed_run_ids) & set(finished_run_ids)
