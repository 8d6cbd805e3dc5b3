"""A night that goes wrong, with real processes: `dagster dev` (webserver + daemon) on 127.0.0.1 with a
temporary DAGSTER_HOME; the inbox sensor launches a shard's run; its render step is SIGKILLed mid-denoise
by a failpoint; `sora-assets backfill --failed` relaunches exactly that shard over GraphQL; the clips are
published once, the ledger has one row each, the killed clip re-ran at most one checkpoint interval and
its frames equal a clean render's."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from sora_assets.core.storage.home import Home
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.services.backfill import BackfillError, shard_statuses
from sora_assets.services.runner import open_instance, run_shards, submit_file, tick_inbox
from sora_assets_tests.defs.test_dagster_dev import running_dagster_dev

pytestmark = pytest.mark.slow

ROWS = [
    {"prompt": "a red fox running through a forest", "tier": "paid", "steps": 20, "seed": 5},
    {"prompt": "slow motion waves crashing on rocks", "tier": "paid", "steps": 20, "seed": 6},
]
CHECKPOINT_EVERY = 10


def wait_for(condition, timeout: float, process: subprocess.Popen, what: str):  # noqa: ANN001, ANN201
    """Poll an observable condition of the external processes until it holds (or fail with `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dagster dev exited while waiting for {what}"
        with contextlib.suppress(BackfillError, OSError):
            value = condition()
            if value:
                return value
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)  # paces the poll; returns at once if the server died
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def runs(instance: DagsterInstance, *statuses: DagsterRunStatus) -> list:
    """Runs of a shard (the sensor's and the backfill's): the daemon may also tick the SLO snapshot schedule."""
    found = instance.get_runs(filters=RunsFilter(statuses=list(statuses)) if statuses else None)
    return [run for run in found if "dagster/partition" in run.tags]


@pytest.fixture
def clean_frames(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[int, str]:
    home = Home.from_env(tmp_path_factory.mktemp("clean") / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    batch = home.root.parent / "night.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    submit_file(home, batch)
    instance = open_instance(home)
    keys = tick_inbox(home, instance).new_keys
    assert all(o.success for o in run_shards(home, instance, keys))
    clips = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db)).query(
        "SELECT row, frames_sha256 FROM clips")
    return dict(zip(clips.row, clips.frames_sha256, strict=True))


def test_a_killed_shard_is_backfilled_over_graphql_and_finishes_exactly_once(
        tmp_path: Path, tiny_model_dir: Path, clean_frames: dict[int, str]) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    env = {**os.environ, "SORA_ASSETS_HOME": str(home.root),
           # kills the render step and both its retries: the run fails, the backfill must finish the shard;
           # step processes (multiprocess executor) are what a killed step is retried in (in process, the
           # default, a SIGKILL ends the whole run: see test_chaos_matrix.py)
           "SORA_ASSETS_FAILPOINTS": "generate.after_step=13:kill*3", "SORA_ASSETS_EXECUTOR": "multiprocess",
           "SORA_ASSETS_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY)}
    with running_dagster_dev(tmp_path, env) as (process, port, dagster_home):
        url = f"http://127.0.0.1:{port}"
        env["DAGSTER_HOME"] = str(dagster_home)
        wait_for(lambda: shard_statuses(url), 120, process, "the webserver")
        batch = tmp_path / "night.jsonl"
        batch.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        submit_file(home, batch)

        with DagsterInstance.from_config(str(dagster_home)) as instance:
            failed = wait_for(lambda: runs(instance, DagsterRunStatus.FAILURE), 240, process,
                              "the sensor's run to die")
            assert len(failed) == 1 and len(runs(instance)) == 1
            (key,) = [failed[0].tags["dagster/partition"]]
            events = [e.dagster_event for e in instance.all_logs(failed[0].run_id) if e.is_dagster_event]
            retries = [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
            killed = [e for e in events if e.event_type_value == "STEP_FAILURE"]
            assert len(retries) == 2 and [e.step_key for e in killed] == ["rendered_clips"]
            assert len(list(home.failpoints.iterdir())) == 3  # three SIGKILLs, each after step 13
            checkpoint_dirs = sorted((home.checkpoints / key).iterdir())
            assert [p.name for p in sorted(checkpoint_dirs[0].glob("*.json"))] == ["step-00010.json"]

            # the UI's "failed and missing" on published_clips would pick the same shards
            assert set(instance.get_dynamic_partitions("shards")) - shard_statuses(url).published == {key}
            result = subprocess.run(["sora-assets", "backfill", "--failed", "--url", url, "--format", "json"],
                                    capture_output=True, text=True, env=env, timeout=60)
            assert result.returncode == 0, result.stderr
            launched = json.loads(result.stdout)
            assert [r["partition_key"] for r in launched["rows"]] == [key] and launched["backfill_id"]

            done = wait_for(lambda: runs(instance, DagsterRunStatus.SUCCESS), 300, process, "the backfill's run")
            assert len(done) == 1 and done[0].tags["dagster/partition"] == key
            assert done[0].tags.get("dagster/backfill") == launched["backfill_id"]
            assert key in shard_statuses(url).published
            again = subprocess.run(["sora-assets", "backfill", "--failed", "--url", url, "--format", "json"],
                                   capture_output=True, text=True, env=env, timeout=60)
            assert json.loads(again.stdout)["rows"] == []  # nothing failed any more

        warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
        clips = warehouse.query("SELECT row, status, frames_sha256, resumed_from_step, steps FROM clips")
        assert sorted(clips.row) == [1, 2] and set(clips.status) == {"published"}
        assert dict(zip(clips.row, clips.frames_sha256, strict=True)) == clean_frames  # bytes of a clean render
        assert sorted(clips.resumed_from_step) == [0, 10]  # re-ran steps 11-13 only: under one interval
        ledger = warehouse.query("SELECT clip_id, gpu_seconds FROM cost_ledger")
        assert len(ledger) == 2 and ledger.clip_id.is_unique and (ledger.gpu_seconds > 0).all()
        assert len(list(home.store.glob("*/*.mp4"))) == 2  # each clip published exactly once
        assert not (home.checkpoints / key).exists()
