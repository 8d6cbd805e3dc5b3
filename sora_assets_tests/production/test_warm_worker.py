"""Issue 21: runs executed by a long-lived `sora-assets worker` (WarmWorkerRunLauncher over Redis), with real
processes: `dagster-daemon` dequeues the queued runs (infra/dagster-warm-worker.yaml, Postgres storage), the
launcher pushes them onto a private Redis list, the worker executes them one after another in its own process.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sora_assets.core.render.failpoints import ENV_VAR
from sora_assets.core.storage.home import Home
from sora_assets_tests.defs.test_dagster_dev import DRILL_MONITORING
from sora_assets_tests.processes import stop_process_group
from sora_assets_tests.production.services import REPO, postgres_env, scratch_database

pytestmark = pytest.mark.slow
WARM_PROFILE = REPO / "infra" / "dagster-warm-worker.yaml"
TWO_TIERS = "".join(json.dumps({"prompt": prompt, "tier": tier, "steps": 12, "seed": seed}) + "\n"
                    for prompt, tier, seed in [("a lighthouse in fog", "paid", 1), ("a kite over dunes", "free", 2)])
ONE_ROW = json.dumps({"prompt": "a lighthouse in fog", "tier": "paid", "steps": 12, "seed": 1}) + "\n"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


@contextlib.contextmanager
def warm_deployment(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                    rows: str = TWO_TIERS, workers: int = 1) -> Iterator[dict]:
    """A batch in the inbox (none when `rows` is empty), a Postgres instance on the warm profile sized for
    `workers` worker processes and a running daemon, whose inbox sensor registers the batch's shards and
    launches their runs (through the queue and the warm launcher)."""
    home = Home.from_env(tmp_path / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    queue = f"gpu-{uuid.uuid4().hex[:8]}"
    redis_url = f"redis://127.0.0.1:6379/{random.randint(8, 15)}"  # noqa: S311 - a private db index
    profile = yaml.safe_load(WARM_PROFILE.read_text())
    profile["run_launcher"]["config"]["queue"] = queue
    profile["run_monitoring"].update(DRILL_MONITORING)  # the drill's clock, as for the dagster dev drills
    # as the profile says for N workers: N runs at once, N render steps in the gpu pool
    profile["concurrency"]["runs"]["max_concurrent_runs"] = workers
    profile["concurrency"]["pools"]["default_limit"] = workers
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(profile))
    with scratch_database() as db_name:
        env = {**os.environ, **postgres_env(db_name), "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(dagster_home),
               "SORA_ASSETS_HOME": str(home.root), "SORA_ASSETS_WORKER_REDIS": redis_url,
               "SORA_ASSETS_CHECKPOINT_EVERY": "5"}
        for name in ("DAGSTER_HOME", "SORA_ASSETS_WORKER_REDIS", *postgres_env(db_name)):
            monkeypatch.setenv(name, env[name])
        from sora_assets.services.runner import submit_file

        if rows:
            batch = tmp_path / "fog-and-dunes.jsonl"
            batch.write_text(rows)
            submit_file(home, batch)
        with (tmp_path / "daemon.log").open("w") as log:
            daemon = subprocess.Popen(["dagster-daemon", "run", "-m", "sora_assets.definitions"], cwd=REPO, env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield {"home": home, "env": env, "queue": queue, "redis": redis_url, "logs": tmp_path}
        finally:
            stop_process_group(daemon)
            import redis

            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(match="sora_assets:warm:*"):
                client.delete(key)


def start_worker(deployment: dict, name: str, extra_env: dict[str, str] | None = None,
                 gpu_lock: Path | None = None) -> subprocess.Popen:
    with (deployment["logs"] / f"{name}.log").open("w") as log:
        return subprocess.Popen(["sora-assets", "worker", "--heartbeat-ttl", "4",
                                 *(["--gpu-lock", str(gpu_lock)] if gpu_lock else [])], cwd=REPO,
                                env={**deployment["env"], **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def launch(deployment: dict, key: str) -> str:
    """`dagster job launch`: submitted to the instance's queue, as a sensor's or backfill's run is."""
    run_id = str(uuid.uuid4())
    done = subprocess.run(["dagster", "job", "launch", "-m", "sora_assets.definitions", "-j", "render_shard",
                           "--run-id", run_id, "--tags", json.dumps({"dagster/partition": key})],
                          cwd=REPO, env=deployment["env"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return run_id


def wait_for(run_ids: list[str], statuses: tuple[str, ...], watched: list[subprocess.Popen], deployment: dict,
             timeout_s: float = 300) -> dict[str, str]:
    from dagster import DagsterInstance

    deadline = time.monotonic() + timeout_s
    with DagsterInstance.get() as instance:
        while True:
            now = {run_id: instance.get_run_by_id(run_id).status.value for run_id in run_ids}
            if all(status in statuses for status in now.values()):
                return now
            logs = {p.name: p.read_text()[-2000:] for p in deployment["logs"].glob("*.log")}
            assert time.monotonic() < deadline, (now, logs)
            with contextlib.suppress(subprocess.TimeoutExpired):
                watched[0].wait(timeout=0.5)  # paces the poll; returns at once if that process ended


def worker_with_failpoint(deployment: dict, name: str, failpoint: str) -> tuple[subprocess.Popen, str]:
    """A worker that hits `failpoint`, and the render run of the one-row batch the daemon hands it."""
    worker = start_worker(deployment, name, {ENV_VAR: failpoint})
    try:
        (run_id,) = render_runs(1, [worker], deployment)
    except BaseException:
        stop_process_group(worker)
        raise
    return worker, run_id


def relaunch(deployment: dict, run_id: str, worker: subprocess.Popen) -> dict:
    """Launch the run's shard again (what `sora-assets backfill --failed` does); its render metadata once it
    succeeded."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        key = instance.get_run_by_id(run_id).tags["dagster/partition"]
    rerun = launch(deployment, key)
    assert wait_for([rerun], FINISHED, [worker], deployment)[rerun] == "SUCCESS"
    return render_metadata(rerun)


def render_runs(count: int, watched: list[subprocess.Popen], deployment: dict, timeout_s: float = 300) -> list[str]:
    """The ids of the first `count` render_shard runs the daemon created (oldest first)."""
    from dagster import DagsterInstance, RunsFilter

    deadline = time.monotonic() + timeout_s
    with DagsterInstance.get() as instance:
        while len(runs := instance.get_runs(RunsFilter(job_name="render_shard"))) < count:
            logs = {p.name: p.read_text()[-2000:] for p in deployment["logs"].glob("*.log")}
            assert time.monotonic() < deadline, logs
            with contextlib.suppress(subprocess.TimeoutExpired):
                watched[0].wait(timeout=0.5)  # paces the poll
    return [run.run_id for run in reversed(runs)][:count]


def render_metadata(run_id: str) -> dict:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.get() as instance:
        (record,) = [r for r in instance.fetch_materializations(AssetKey("rendered_clips"), limit=20).records
                     if r.run_id == run_id]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_two_shards_run_in_one_warm_worker_that_loads_the_model_once(tmp_path: Path, tiny_model_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with warm_deployment(tmp_path, tiny_model_dir, monkeypatch) as deployment:
        worker = start_worker(deployment, "worker")
        try:
            run_ids = render_runs(2, [worker], deployment)  # the inbox sensor's, one per shard
            statuses = wait_for(run_ids, FINISHED, [worker], deployment)
            assert set(statuses.values()) == {"SUCCESS"}, (statuses, (tmp_path / "worker.log").read_text()[-3000:])
            first, second = (render_metadata(run_id) for run_id in run_ids)
        finally:
            stop_process_group(worker)
    # both runs executed in the worker process itself, which loaded the video pipeline once for both
    assert first["process_id"] == second["process_id"] == worker.pid
    assert first["pipeline_loads_in_process"] == second["pipeline_loads_in_process"] == 1
    assert first["rendered"] == second["rendered"] == 1, (first, second)
    home = deployment["home"]
    assert len(list(home.store.glob("*/*.mp4"))) == 2


def wait_until_serving(workers: list[subprocess.Popen], deployment: dict, timeout_s: float = 240) -> None:
    """Until every worker's heartbeat key exists: each is about to block on the queue."""
    from sora_assets.services.warm_worker import serving_pids

    deadline = time.monotonic() + timeout_s
    while not {w.pid for w in workers} <= serving_pids(deployment["redis"]):
        logs = {p.name: p.read_text()[-2000:] for p in deployment["logs"].glob("*.log")}
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), logs
        with contextlib.suppress(subprocess.TimeoutExpired):
            workers[0].wait(timeout=0.5)  # paces the poll; returns at once if that worker died


def test_two_workers_sharing_a_gpu_lock_render_one_at_a_time(tmp_path: Path, tiny_model_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers per GPU (`--gpu-lock` on one file): each takes one of the two shards, the renders never hold
    the GPU at the same time, and both shards publish."""
    from sora_assets.services.runner import submit_file

    lock = tmp_path / "gpu0.lock"
    with warm_deployment(tmp_path, tiny_model_dir, monkeypatch, rows="", workers=2) as deployment:
        workers = [start_worker(deployment, f"worker{i}", gpu_lock=lock) for i in range(2)]
        try:
            wait_until_serving(workers, deployment)
            batch = tmp_path / "fog-and-dunes.jsonl"
            batch.write_text(TWO_TIERS)
            submit_file(deployment["home"], batch)  # both idle workers are blocked on the queue: one run each
            run_ids = render_runs(2, workers, deployment)
            statuses = wait_for(run_ids, FINISHED, workers, deployment)
            assert set(statuses.values()) == {"SUCCESS"}, statuses
            renders = [render_metadata(run_id) for run_id in run_ids]
        finally:
            for worker in workers:
                stop_process_group(worker)
    assert {m["process_id"] for m in renders} == {w.pid for w in workers}
    assert {m["gpu_lock"] for m in renders} == {str(lock.resolve())} and all(m["rendered"] == 1 for m in renders)
    (first_from, first_until), (second_from, second_until) = sorted((m["gpu_held_from"], m["gpu_held_until"])
                                                                    for m in renders)
    assert first_from < first_until <= second_from < second_until  # one render on the GPU at a time
    assert len(list(deployment["home"].store.glob("*/*.mp4"))) == 2


@pytest.fixture
def one_row(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """The warm deployment with a one-row batch in the inbox."""
    with warm_deployment(tmp_path, tiny_model_dir, monkeypatch, ONE_ROW) as deployment:
        yield deployment


def test_a_killed_worker_fails_its_run_and_a_new_worker_finishes_the_shard(one_row: dict) -> None:
    from dagster import DagsterInstance

    from sora_assets.resources.warehouse import ParquetWarehouse

    deployment = one_row
    home = deployment["home"]
    # the worker SIGKILLs itself after the 7th denoising step of the shard's clip (a lost GPU node)
    doomed, killed_run = worker_with_failpoint(deployment, "doomed", "generate.after_step=7:kill")
    try:
        assert doomed.wait(timeout=240) == -9, (deployment["logs"] / "doomed.log").read_text()[-3000:]
        # run monitoring sees the worker's heartbeat expire and fails the run
        assert wait_for([killed_run], FINISHED, [doomed], deployment)[killed_run] == "FAILURE"
        with DagsterInstance.get() as instance:
            messages = [r.message for r in instance.all_logs(killed_run)]
        assert any("stopped heartbeating" in (m or "") for m in messages), messages[-10:]
        worker = start_worker(deployment, "worker")
        try:
            metadata = relaunch(deployment, killed_run, worker)
        finally:
            stop_process_group(worker)
        with DagsterInstance.get() as instance:
            # the dead run's gpu slot was freed: nothing holds the pool once both runs ended
            assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
    finally:
        stop_process_group(doomed)
    assert metadata["process_id"] == worker.pid and metadata["rendered"] == 1
    warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
    clips = warehouse.query("SELECT status, resumed_from_step FROM clips")
    assert list(clips.status) == ["published"] and list(clips.resumed_from_step) == [5]  # from the checkpoint
    assert len(list(home.store.glob("*/*.mp4"))) == 1
    ledger = warehouse.query("SELECT clip_id, gpu_seconds FROM cost_ledger")
    attempts = warehouse.query("SELECT clip_id, steps_done, finished, gpu_seconds FROM render_attempts")
    assert len(ledger) == 1 and len(attempts) == 2  # the killed attempt (7 steps) and the resumed one
    assert ((attempts.steps_done == 7) & ~attempts.finished).sum() == 1
    assert float(ledger.gpu_seconds.sum()) == pytest.approx(float(attempts.gpu_seconds.sum()), rel=1e-9)


@pytest.mark.chaos  # run by name with the chaos matrix (`-m chaos`): the default run has the kill drill above
def test_terminating_a_hung_run_interrupts_it_and_the_worker_takes_the_next(one_row: dict) -> None:
    from dagster import DagsterInstance

    deployment = one_row
    home = deployment["home"]
    # the render wedges after step 3 (a hung GPU); the UI's Terminate goes through the launcher
    worker, hung = worker_with_failpoint(deployment, "worker", "generate.after_step=3:hang")
    try:
        deadline = time.monotonic() + 240
        while not (home.failpoints.exists() and any(home.failpoints.iterdir())):  # the hang has begun
            log = deployment["logs"] / "worker.log"
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=0.5)  # paces the poll
        with DagsterInstance.get() as instance:
            assert instance.run_launcher.terminate(hung)
        assert wait_for([hung], FINISHED, [worker], deployment)[hung] in ("CANCELED", "FAILURE")
        assert worker.poll() is None  # the worker survives its run's termination
        # the marker keeps the hang from firing again
        assert relaunch(deployment, hung, worker)["process_id"] == worker.pid
    finally:
        stop_process_group(worker)
    assert len(list(home.store.glob("*/*.mp4"))) == 1
