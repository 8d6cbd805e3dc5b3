"""Where a run's steps execute, chosen by environment: in the run's own processes (the default), in the
run process itself (SORA_ASSETS_EXECUTOR=in_process: no step process start-up, measured at about 5 s
per step process on 2 cores for the 7 steps of a shard, and the imports paid once per run; a killed run
is then one dead process, which needs run monitoring in dagster.yaml to be marked failed and free its `gpu`
pool slot), or on a fleet of Celery workers (dagster-celery) so GPU steps spread over many machines.

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


def executor_from_env(env: Mapping[str, str]) -> Any | None:
    """An ExecutorDefinition for SORA_ASSETS_EXECUTOR (multiprocess | in_process | celery), or None for
    Dagster's default (multiprocess)."""
    kind = env.get(EXECUTOR_ENV, "").strip().lower()
    if kind in ("", "default", "multiprocess"):
        return None
    if kind in ("in_process", "in-process", "inprocess"):
        from dagster import in_process_executor

        return in_process_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_settings_from_env(env), name="celery_executor")
    raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected 'multiprocess', 'in_process' or 'celery'")
