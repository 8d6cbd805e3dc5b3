"""WarmWorkerRunLauncher's view of run health and its queue, against the local Redis (127.0.0.1:6379)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from dagster import DagsterRun
from dagster._core.launcher.base import WorkerStatus

from sora_assets.run_launcher import (
    WORKER_QUEUE_TAG,
    WarmWorkerRunLauncher,
    assigned_key,
    heartbeat_key,
    live_worker_ids,
    queue_key,
    redis_client,
)
from sora_assets.services.warm_worker import serving_pids

# a db index of its own: the fixture clears every warm-worker key in it, and the drills that run beside it on
# the other xdist worker pick theirs from 8-15
REDIS_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture
def launcher() -> Iterator[WarmWorkerRunLauncher]:
    queue = f"unit-{uuid.uuid4().hex[:8]}"
    yield WarmWorkerRunLauncher(REDIS_URL, queue=queue)
    client = redis_client(REDIS_URL)
    for key in client.scan_iter(match="sora_assets:warm:*"):
        client.delete(key)


def a_run(**tags: str) -> DagsterRun:
    return DagsterRun(job_name="render_shard", run_id=str(uuid.uuid4()), tags=tags)


def test_a_run_still_on_the_list_is_waiting_and_one_nobody_took_is_not_found(launcher: WarmWorkerRunLauncher) -> None:
    waiting, lost = a_run(), a_run()
    launcher.redis.lpush(queue_key(launcher.queue), waiting.run_id)
    assert launcher.check_run_worker_health(waiting).status == WorkerStatus.RUNNING
    assert launcher.check_run_worker_health(lost).status == WorkerStatus.NOT_FOUND


def test_a_run_is_healthy_while_its_worker_heartbeats_and_failed_once_the_key_expired(
        launcher: WarmWorkerRunLauncher) -> None:
    run, worker = a_run(), f"host-1-{uuid.uuid4().hex[:6]}"
    launcher.redis.set(assigned_key(run.run_id), worker)
    launcher.redis.set(heartbeat_key(worker), "1", ex=30)
    health = launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.RUNNING and health.run_worker_id == worker
    launcher.redis.delete(heartbeat_key(worker))  # what the TTL does to a SIGKILLed worker's key
    health = launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED and worker in (health.msg or "")


def test_the_worker_queue_tag_routes_a_run_to_another_list(launcher: WarmWorkerRunLauncher) -> None:
    assert launcher.queue_of(a_run()) == launcher.queue
    assert launcher.queue_of(a_run(**{WORKER_QUEUE_TAG: "gpu-h100"})) == "gpu-h100"


def test_the_launcher_is_configurable_from_dagster_yaml() -> None:
    from dagster._config import process_config
    from dagster._config.field import resolve_to_config_type

    config = process_config(resolve_to_config_type(WarmWorkerRunLauncher.config_type()),
                            {"redis_url": REDIS_URL})
    assert config.success, config.errors
    launcher = WarmWorkerRunLauncher.from_config_value(None, config.value)  # type: ignore[arg-type]
    assert (launcher.redis_url, launcher.queue) == (REDIS_URL, "gpu")


def test_terminate_takes_a_queued_run_off_the_list_and_flags_a_running_one(launcher: WarmWorkerRunLauncher) -> None:
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import instance_for_test

    from sora_assets.run_launcher import terminate_key

    overrides = {"run_launcher": {"module": "sora_assets.run_launcher", "class": "WarmWorkerRunLauncher",
                                  "config": {"redis_url": REDIS_URL, "queue": launcher.queue}}}
    with instance_for_test(overrides=overrides) as instance:
        queued, running = (instance.add_run(DagsterRun(job_name="render_shard", run_id=str(uuid.uuid4()),
                                                       status=DagsterRunStatus.STARTING)) for _ in range(2))
        instance.run_launcher.redis.lpush(queue_key(launcher.queue), queued.run_id)
        launcher.redis.set(assigned_key(running.run_id), "host-2-abc")
        assert instance.run_launcher.terminate(queued.run_id)
        assert instance.get_run_by_id(queued.run_id).status == DagsterRunStatus.CANCELED
        assert launcher.redis.llen(queue_key(launcher.queue)) == 0  # never reaches a worker
        assert instance.run_launcher.terminate(running.run_id)
        assert instance.get_run_by_id(running.run_id).status == DagsterRunStatus.CANCELING
        assert launcher.redis.get(terminate_key(running.run_id)) == b"1"  # its worker's watch interrupts it
        assert not instance.run_launcher.terminate(queued.run_id)  # finished: nothing to do


def test_live_workers_are_read_from_their_heartbeat_keys(launcher: WarmWorkerRunLauncher) -> None:
    workers = ["gpu-node-7-4242-a1b2c3", "gpu-node-7-4343-d4e5f6"]  # host-pid-suffix; the host has dashes
    for worker in workers:
        launcher.redis.set(heartbeat_key(worker), "1", ex=30)
    assert set(workers) <= set(live_worker_ids(launcher.redis))
    assert {4242, 4343} <= serving_pids(REDIS_URL)
    launcher.redis.delete(heartbeat_key(workers[0]))  # expired: no longer serving
    assert 4242 not in serving_pids(REDIS_URL) and 4343 in serving_pids(REDIS_URL)
