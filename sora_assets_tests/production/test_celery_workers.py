"""Scale-out with dagster-celery: two shard runs at once, their steps executed by two Celery worker processes
(Redis broker on 127.0.0.1:6379, a private db index and queue), events in a Postgres instance."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sora_assets.core.storage.home import Home
from sora_assets_tests.processes import stop_process_group
from sora_assets_tests.production.services import (
    REPO,
    postgres_dagster_home,
    postgres_env,
    scratch_database,
)

pytestmark = pytest.mark.slow
# paid and free prompts: two shards (a shard never mixes tiers)
TWO_TIERS = "".join(json.dumps({"prompt": prompt, "tier": tier, "steps": 12, "seed": seed}) + "\n"
                    for prompt, tier, seed in [("a tram in the snow", "paid", 1), ("a heron at the shore", "free", 2),
                                               ("a tram at night", "paid", 3), ("a heron in flight", "free", 4)])


@contextlib.contextmanager
def celery_workers(names_and_queues: list[tuple[str, str]], config: Path, env: dict[str, str],
                   logs: Path) -> Iterator[list[subprocess.Popen]]:
    """`dagster-celery worker start` per (name, queue); solo pool: a step runs in the worker process itself,
    which consumes nothing else meanwhile. The definitions are imported at start-up (-i), as on a GPU node."""
    workers = []
    try:
        for name, queue in names_and_queues:
            with (logs / f"{name}.log").open("w") as log:
                workers.append(subprocess.Popen(
                    ["dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-y", str(config), "-q", queue,
                     "-n", name, "-l", "INFO", "-i", "sora_assets.definitions", "--", "--pool=solo",
                     "--without-mingle", "--without-gossip"], cwd=REPO, env=env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 120
        for (name, _), worker in zip(names_and_queues, workers, strict=True):  # ready when celery says so
            log_path = logs / f"{name}.log"
            while " ready." not in log_path.read_text():
                assert "amqp://" not in log_path.read_text(), "worker ignored the broker in its config"  # fail fast
                assert worker.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(timeout=0.3)  # paces the poll; returns at once if the worker died
        yield workers
    finally:
        for worker in workers:
            stop_process_group(worker)


def forget_queues(broker: str, token: str) -> None:
    """Drop this test's queues and bindings from the broker (task results expire on their own)."""
    import redis

    client = redis.Redis.from_url(broker)
    for key in client.scan_iter(match=f"*-{token}*"):
        client.delete(key)


def queued(broker: str, queue: str) -> int:
    """Messages waiting in a Celery queue on Redis (kombu keeps one list per priority band)."""
    import redis

    client = redis.Redis.from_url(broker)
    return sum(client.llen(key) for key in client.scan_iter(match=f"{queue}*") if client.type(key) == b"list")


def worker_pids(worker: subprocess.Popen) -> set[int]:
    """The CLI's PID and its descendants' (the CLI execs `celery ... worker` as a child)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        return {worker.pid} | {child.pid for child in psutil.Process(worker.pid).children(recursive=True)}
    return {worker.pid}


def test_two_shards_render_at_once_on_two_celery_workers(tmp_path: Path, tiny_model_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from celery import Celery
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, EventRecordsFilter

    from sora_assets.executors import celery_settings_from_env
    from sora_assets.services.runner import submit_file, tick_inbox

    home = Home.from_env(tmp_path / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    token = uuid.uuid4().hex[:8]
    cpu_queue, gpu_queue, idle_queue = f"sora-cpu-{token}", f"sora-gpu-{token}", f"sora-idle-{token}"
    broker = f"redis://127.0.0.1:6379/{random.randint(8, 15)}"  # noqa: S311 - a private db index, not a secret
    with scratch_database() as db_name:
        env = {**os.environ, **postgres_env(db_name), "PYTHONPATH": str(REPO),
               "DAGSTER_HOME": str(postgres_dagster_home(tmp_path / "dagster_home")),
               "SORA_ASSETS_HOME": str(home.root), "SORA_ASSETS_EXECUTOR": "celery",
               "SORA_ASSETS_CELERY_BROKER": broker, "SORA_ASSETS_CELERY_QUEUE": cpu_queue,
               "SORA_ASSETS_CELERY_GPU_QUEUE": gpu_queue}
        for name in ("DAGSTER_HOME", *postgres_env(db_name)):
            monkeypatch.setenv(name, env[name])
        config = tmp_path / "celery.yaml"
        # the executor's own config block, in the run-config shape `dagster-celery worker start -y` reads
        config.write_text(yaml.safe_dump({"execution": {"config": celery_settings_from_env(env)}}))

        batch = tmp_path / "trams-and-herons.jsonl"
        batch.write_text(TWO_TIERS)
        submit_file(home, batch)
        with DagsterInstance.get() as instance:
            keys = tick_inbox(home, instance).new_keys
            instance.event_log_storage.set_concurrency_slots("gpu", 2)  # the `gpu` pool: two GPUs in the fleet
        assert len(keys) == 2

        # one CPU worker for the CPU steps; two GPU workers that start consuming the GPU queue only once both
        # render steps wait in it, so neither can finish one render and take the other as well
        gpu_names = [f"gpu-0-{token}", f"gpu-1-{token}"]  # celery names them <name>@<host>
        workers_spec = [(f"cpu-{token}", cpu_queue), (gpu_names[0], idle_queue), (gpu_names[1], idle_queue)]
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(forget_queues, broker, token)  # after the workers stop (registered first, runs last)
            workers = cleanup.enter_context(celery_workers(workers_spec, config, env, tmp_path))
            execute = ["dagster", "job", "execute", "-m", "sora_assets.definitions", "-j", "render_shard", "--tags"]
            runs = []
            for key in keys:  # both runs at once: each submits its steps to the queues
                with (tmp_path / f"run-{key}.log").open("w") as log:
                    runs.append(subprocess.Popen([*execute, json.dumps({"dagster/partition": key})], cwd=REPO,
                                                 env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            try:
                deadline = time.monotonic() + 180
                while queued(broker, gpu_queue) < 2:
                    assert all(r.poll() is None for r in runs), "a run ended before rendering"
                    assert time.monotonic() < deadline, "the render steps never reached the GPU queue"
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        runs[0].wait(timeout=0.5)  # paces the poll
                control = Celery(broker=broker).control
                gpu_workers = [f"{name}@{socket.gethostname()}" for name in gpu_names]
                replies = control.add_consumer(gpu_queue, destination=gpu_workers, reply=True, timeout=10)
                assert len(replies) == 2, replies
                for run, key in zip(runs, keys, strict=True):
                    assert run.wait(timeout=200) == 0, (tmp_path / f"run-{key}.log").read_text()[-3000:]
            finally:
                for run in runs:
                    if run.poll() is None:
                        stop_process_group(run)
            pids = [worker_pids(w) for w in workers]

        with DagsterInstance.get() as instance:
            records = instance.get_runs()
            assert sorted(r.tags["dagster/partition"] for r in records) == sorted(keys)
            assert all(r.status == DagsterRunStatus.SUCCESS for r in records)
            steps = {}  # (partition, step) -> (pid, start, end)
            for kind in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
                for record in instance.get_event_records(EventRecordsFilter(event_type=kind), limit=200):
                    entry = record.event_log_entry
                    partition = next(r.tags["dagster/partition"] for r in records if r.run_id == entry.run_id)
                    steps.setdefault((partition, entry.step_key), []).append((entry.dagster_event.pid, entry.timestamp))

    def owner(pid: int) -> int:
        return next(index for index, owned in enumerate(pids) if pid in owned)

    renders = {}
    for (partition, step), seen in steps.items():
        (pid, start), (end_pid, end) = sorted(seen, key=lambda s: s[1])
        assert pid == end_pid
        if step == "rendered_clips":
            renders[partition] = (owner(pid), start, end)
        else:
            assert owner(pid) == 0, f"{step} of {partition} ran outside the CPU worker"
    print(f"render steps (worker, start, end): {renders}")
    (worker_a, start_a, end_a), (worker_b, start_b, end_b) = renders.values()
    assert sorted([worker_a, worker_b]) == [1, 2]  # each shard's GPU step in a different GPU worker process
    assert start_a < end_b and start_b < end_a  # at the same time
