"""Where a run's steps execute, chosen by environment: in the run process itself (the default, the in-process
executor), in one process per step (SORA_ASSETS_EXECUTOR=multiprocess, Dagster's own default), or on a fleet of
Celery workers (dagster-celery) so GPU steps spread over many machines.

In process is the default since issue 21: a shard's 7 steps each paid a fresh process start and the code
location's imports (about 5 s per step process on 2 cores, measured with bench/shard_overhead.py), and steps
run one after another anyway (each waits for the one before). A killed run is then one dead process: the code
server reports its run worker gone and the run is marked failed, and run monitoring (dagster.yaml) frees the
`gpu` pool slot it claimed, as it does for a killed coordinator of a multiprocess run (whose orphaned step
processes are fenced, see defs/fencing.py).

SORA_ASSETS_EXECUTOR=celery with SORA_ASSETS_CELERY_BROKER (e.g. redis://redis:6379/0),
SORA_ASSETS_CELERY_BACKEND (default: the broker) and SORA_ASSETS_CELERY_QUEUE (default "dagster"; start
workers with `dagster-celery worker start -A dagster_celery.app -y <config> -q <queue>`). The render step
goes to its own queue, SORA_ASSETS_CELERY_GPU_QUEUE (default "gpu"), served by workers on GPU machines;
the other steps stay on CPU workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXECUTOR_ENV = "SORA_ASSETS_EXECUTOR"
GPU_QUEUE_ENV = "SORA_ASSETS_CELERY_GPU_QUEUE"


def gpu_step_tags(env: Mapping[str, str]) -> dict[str, str]:
    """Op tags of the render step: its Celery queue (ignored by the other executors)."""
    return {"dagster-celery/queue": env.get(GPU_QUEUE_ENV, "gpu")}


def celery_settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The celery_executor config (the same block the workers' `-y` YAML takes)."""
    broker = env.get("SORA_ASSETS_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    return {
        "broker": broker,
        "backend": env.get("SORA_ASSETS_CELERY_BACKEND", broker),
        "config_source": {
            "task_default_queue": env.get("SORA_ASSETS_CELERY_QUEUE", "dagster"),
            # a worker holds one step at a time and acknowledges it only when done: a long render never
            # sits prefetched behind another on a busy GPU, and a lost worker's step is delivered again
            "task_acks_late": True,
            "worker_prefetch_multiplier": 1,
        },
    }


def executor_from_env(env: Mapping[str, str]) -> Any:
    """The ExecutorDefinition for SORA_ASSETS_EXECUTOR: in_process (the default) | multiprocess | celery."""
    kind = env.get(EXECUTOR_ENV, "").strip().lower()
    if kind in ("", "default", "in_process", "in-process", "inprocess"):
        from dagster import in_process_executor

        return in_process_executor
    if kind == "multiprocess":
        from dagster import multiprocess_executor

        return multiprocess_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_settings_from_env(env), name="celery_executor")
    raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected 'multiprocess', 'in_process' or 'celery'")
