"""One GPU's render lock, shared by the worker processes that render on it (issue 21: GPU idle between shards).

With one warm worker per GPU the GPU waits, after each shard, for that shard's CPU tail (frame scan, signing,
publishing), the queue's dequeue tick and the next shard's validation: 4-5 s on the tiny model. Two workers per
GPU overlap that tail with the other worker's render, and this lock keeps their denoising apart. It is
`fcntl.flock` on one file per GPU, not a Dagster pool slot: a blocked process wakes the moment the holder
releases (a pool claim polls with a backoff that reaches 15 s), and the kernel releases the lock of a process
that dies (SIGKILL, OOM kill, power loss of the process), so a crashed worker never leaves its GPU locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

GPU_LOCK_ENV = "SORA_ASSETS_GPU_LOCK"


@dataclass
class GpuHold:
    """When this process held the GPU (epoch seconds), and how long it waited for it; all None without a lock."""

    path: str | None
    waited_s: float | None = None
    acquired_at: float | None = None
    released_at: float | None = None


def gpu_lock_path(env: Mapping[str, str] | None = None) -> str | None:
    """The lock file this process renders under ($SORA_ASSETS_GPU_LOCK), or None: the GPU is this process's own."""
    return (os.environ if env is None else env).get(GPU_LOCK_ENV) or None


@contextmanager
def gpu_lock(path: str | None) -> Iterator[GpuHold]:
    """Hold the GPU behind `path` for the block (blocking until it is free); without a path, a no-op."""
    hold = GpuHold(path)
    if not path:
        yield hold
        return
    began = time.time()
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # a signal's handler (Dagster's terminate) still interrupts it
        hold.acquired_at = time.time()
        hold.waited_s = hold.acquired_at - began
        try:
            yield hold
        finally:
            hold.released_at = time.time()
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
