"""Which runs a crash left behind (core.recovery): pure rules plus the /proc liveness check."""

import os
import subprocess
import sys
import time

from sora_assets.core.ops.recovery import (
    NO_PID_GRACE_S,
    RunProcess,
    dead_runs,
    process_alive,
    process_start_time,
    runs_holding_slots_after_they_ended,
)


def test_runs_in_progress_without_a_live_worker_are_dead_and_others_are_left_alone() -> None:
    now = 10_000.0
    runs = [RunProcess("alive", "STARTED", 11, now - 50), RunProcess("gone", "STARTED", 12, now - 50),
            RunProcess("never-started", "STARTING", None, now - NO_PID_GRACE_S - 1),
            RunProcess("just-launched", "STARTING", None, now - 5), RunProcess("over", "FAILURE", 12, now - 50),
            RunProcess("canceling", "CANCELING", 12, now - 50)]
    dead = dead_runs(runs, now, alive=lambda pid, _started: pid == 11)
    assert [r.run_id for r in dead] == ["gone", "never-started", "canceling"]


def test_a_pid_counts_only_while_its_process_lives_and_started_before_the_run() -> None:
    assert process_alive(os.getpid())
    me = process_start_time(os.getpid())
    assert me is not None and abs(me - time.time()) < 24 * 3600 * 365  # a plausible epoch time
    assert process_alive(os.getpid(), not_after=time.time())
    # the same pid "started" long after the run began: a reused pid after a reboot, not the run's worker
    assert not process_alive(os.getpid(), not_after=me - 3600)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)


def test_only_finished_runs_have_their_slots_freed() -> None:
    assert runs_holding_slots_after_they_ended({"a", "b", "c"}, ["b", "c", "z"]) == {"b", "c"}
