"""The GPU lock between two workers on one GPU: exclusive across processes, released when its holder dies."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sora_assets.core.render.gpu_lock import GPU_LOCK_ENV, GpuHold, gpu_lock, gpu_lock_path

HOLDER = """
import sys, time
from sora_assets.core.render.gpu_lock import gpu_lock
with gpu_lock(sys.argv[1]) as hold:
    print("held", flush=True)
    sys.stdin.readline()  # released when the test says so (or never, if it kills this process)
    print(repr(time.time()), flush=True)
"""


def holder(path: Path) -> subprocess.Popen[str]:
    """Another process holding the lock, once it has printed "held"."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def busy(path: Path) -> bool:
    """Whether some process holds the lock now (a non-blocking try from a fresh descriptor)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def acquire_in_thread(path: Path) -> tuple[threading.Thread, list[GpuHold]]:
    holds: list[GpuHold] = []

    def take() -> None:
        with gpu_lock(str(path)) as hold:
            holds.append(hold)
    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, holds


def test_without_a_path_it_holds_nothing() -> None:
    with gpu_lock(None) as hold:
        assert hold == GpuHold(None)
    assert gpu_lock_path({}) is None and gpu_lock_path({GPU_LOCK_ENV: "/x/gpu0.lock"}) == "/x/gpu0.lock"


def test_a_second_process_waits_until_the_first_releases(tmp_path: Path) -> None:
    path = tmp_path / "gpu0.lock"
    first = holder(path)
    assert busy(path)
    thread, holds = acquire_in_thread(path)
    thread.join(timeout=0.5)  # not a synchronisation: it must still be waiting whatever the machine's speed
    assert thread.is_alive() and not holds
    first.stdin.write("release\n")
    first.stdin.flush()
    released_at = float(first.stdout.readline())
    thread.join(timeout=60)
    assert holds and holds[0].acquired_at >= released_at and holds[0].waited_s > 0
    assert holds[0].released_at >= holds[0].acquired_at
    assert first.wait(timeout=60) == 0 and not busy(path)


def test_a_killed_holder_never_leaves_the_gpu_locked(tmp_path: Path) -> None:
    path = tmp_path / "gpu0.lock"
    victim = holder(path)
    assert busy(path)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    thread, holds = acquire_in_thread(path)
    thread.join(timeout=60)  # a liveness bound: the kernel released the dead process's lock
    assert holds and holds[0].acquired_at is not None
