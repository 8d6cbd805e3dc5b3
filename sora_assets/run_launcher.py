"""A run launcher that hands runs to long-lived, warm worker processes over Redis (issue 21).

Dagster's DefaultRunLauncher starts a fresh process per run, and a fresh process pays about 11 s of CPU on this
2-core VM before a shard's first denoising step (imports, the code location, the Great Expectations context,
the pre-filter model, the video pipeline: bench/shard_overhead.py). A GPU worker that stays alive between runs
pays that once: `sora-assets worker` pops run ids from a Redis list and executes each run in its own process
with Dagster's own run-worker entry point, so every cache the previous run filled (the pipeline, MiniLM, the
GE context) is still there.

Configure it in dagster.yaml (infra/dagster-warm-worker.yaml is a whole profile):

    run_launcher:
      module: sora_assets.run_launcher
      class: WarmWorkerRunLauncher
      config:
        redis_url: redis://127.0.0.1:6379/0
        queue: gpu                     # a run's `sora_assets/worker_queue` tag overrides it

Liveness: every worker refreshes a heartbeat key with a TTL; a run whose worker's key expired is reported
FAILED to run monitoring (`check_run_worker_health`), which marks the run failed and frees its `gpu` pool
slot, as for a dead run process. Termination: a queued run is taken off the list and marked canceled; a
running one gets the flag its worker polls, and the worker interrupts the run as Dagster's own cancellation
thread does.

Hand-written rather than dagster-celery's executor because that executor ships *steps* to workers while the
run coordinator is still a fresh process per run (it pays the imports and the code location each time); this
launcher ships the whole run.
"""

from __future__ import annotations

from typing import Any

from dagster import Field, StringSource
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData

WORKER_QUEUE_TAG = "sora_assets/worker_queue"
KEY_PREFIX = "sora_assets:warm"


def queue_key(queue: str) -> str:
    return f"{KEY_PREFIX}:queue:{queue}"


def assigned_key(run_id: str) -> str:
    """Which worker took the run (set by the worker when it pops it)."""
    return f"{KEY_PREFIX}:run:{run_id}:worker"


def terminate_key(run_id: str) -> str:
    return f"{KEY_PREFIX}:run:{run_id}:terminate"


def heartbeat_key(worker_id: str) -> str:
    return f"{KEY_PREFIX}:worker:{worker_id}:alive"


def live_worker_ids(client: Any) -> list[str]:
    """The ids of the workers whose heartbeat key exists now (each is serving or about to block on its queue)."""
    head, tail = heartbeat_key("|").split("|")
    return [k.decode().removeprefix(head).removesuffix(tail) for k in client.scan_iter(match=heartbeat_key("*"))]


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)


class WarmWorkerRunLauncher(RunLauncher, ConfigurableClass):
    """Pushes each launched run's id onto a Redis list that `sora-assets worker` processes serve."""

    def __init__(self, redis_url: str, queue: str = "gpu", inst_data: ConfigurableClassData | None = None) -> None:
        self.redis_url = redis_url
        self.queue = queue
        self._inst_data = inst_data
        self._redis: Any = None
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"redis_url": Field(StringSource, description="redis://host:port/db the workers listen on"),
                "queue": Field(StringSource, is_required=False, default_value="gpu")}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]) -> WarmWorkerRunLauncher:
        return cls(redis_url=config_value["redis_url"], queue=config_value.get("queue", "gpu"), inst_data=inst_data)

    @property
    def redis(self) -> Any:
        if self._redis is None:
            self._redis = redis_client(self.redis_url)
        return self._redis

    def queue_of(self, run: DagsterRun) -> str:
        return run.tags.get(WORKER_QUEUE_TAG, self.queue)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        queue = self.queue_of(run)
        self._instance.report_engine_event(f"Queued for a warm worker on Redis list {queue_key(queue)}.", run,
                                           cls=self.__class__)
        self.redis.lpush(queue_key(queue), run.run_id)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        if self.redis.lrem(queue_key(self.queue_of(run)), 0, run_id):  # still waiting: never started
            self._instance.report_run_canceled(run, "Taken off the warm worker's queue before it started.")
            return True
        self.redis.set(terminate_key(run_id), "1", ex=24 * 3600)  # the worker's watcher interrupts the run
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = self.redis.get(assigned_key(run.run_id))
        if worker is None:
            waiting = run.run_id.encode() in self.redis.lrange(queue_key(self.queue_of(run)), 0, -1)
            return CheckRunHealthResult(WorkerStatus.RUNNING if waiting else WorkerStatus.NOT_FOUND,
                                        "waiting on the warm worker queue" if waiting else
                                        "no warm worker took this run")
        worker_id = worker.decode()
        if self.redis.exists(heartbeat_key(worker_id)):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=worker_id)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"warm worker {worker_id} stopped heartbeating",
                                    run_worker_id=worker_id)
