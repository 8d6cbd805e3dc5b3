"""How long a render run may take before run monitoring terminates it (`dagster/max_runtime`).

A run that hangs (a wedged GPU, a deadlocked worker) holds the shard's `gpu` pool slot until it ends; the
limit ends it. It is derived from the shard's estimate with room to spare: an honest slow run must never be
killed, so the limit is several estimates plus the run's start-up, never under a floor.
"""

from __future__ import annotations

MAX_RUNTIME_TAG = "dagster/max_runtime"
STARTUP_S = 600.0  # process start, model load, validation, scan, sign and publish of a shard
FACTOR = 4.0  # estimates are calibrated means; a shard four times slower than expected is stuck
FLOOR_S = 1800.0


def render_max_runtime_s(est_gpu_seconds: float, factor: float = FACTOR, startup_s: float = STARTUP_S,
                         floor_s: float = FLOOR_S) -> int:
    """Seconds a shard's render run may take: max(floor, startup + factor × estimate), whole seconds."""
    if est_gpu_seconds < 0:
        raise ValueError(f"an estimate cannot be negative ({est_gpu_seconds})")
    return int(max(floor_s, startup_s + factor * est_gpu_seconds) + 0.5)
