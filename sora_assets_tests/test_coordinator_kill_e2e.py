"""Issue 19 (1) with real processes: `dagster dev` (webserver + daemon, the repo's dagster.yaml) runs two shards
on a one-slot `gpu` pool; a failpoint SIGKILLs the run coordinator of whichever shard renders first, mid-denoise.

Run monitoring frees the dead run's slot, so the other shard's render starts and finishes within a bounded wait
(a liveness bound, not a speed assertion); the orphaned step process is fenced (no STEP_SUCCESS, no rows);
`sora-assets backfill --failed` finishes the killed shard; every clip is published once, one ledger row each,
and no pool slot is left claimed. The same with the default in-process executor, where the killed process is the
whole run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from sora_assets.core.storage.home import Home
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.services.backfill import shard_statuses
from sora_assets.services.runner import submit_file
from sora_assets_tests.defs.test_dagster_dev import running_dagster_dev
from sora_assets_tests.test_backfill_e2e import runs, wait_for

pytestmark = pytest.mark.slow  # the in-process case runs by default; the multiprocess one (~3-7 min) with -m chaos

ROWS = [  # two tiers: two shards, one gpu slot between them
    {"prompt": "a red fox running through a forest", "tier": "paid", "steps": 20, "seed": 5},
    {"prompt": "slow motion waves crashing on rocks", "tier": "free", "steps": 20, "seed": 6},
]
# free_slots_after_run_end_seconds + the monitoring poll (30 + 15 as shipped) + run start-up on 2 busy cores
NEXT_SHARD_BOUND_S = 240


def step_events(instance: DagsterInstance, run_id: str, kind: DagsterEventType, step: str) -> list:
    return [e for e in instance.all_logs(run_id, of_type=kind) if e.step_key == step]


def backfill_the_killed_shard(instance: DagsterInstance, url: str, env: dict[str, str], process: subprocess.Popen,
                              key: str) -> None:
    """`sora-assets backfill --failed` relaunches exactly the killed shard; wait for it and for every slot."""
    result = subprocess.run(["sora-assets", "backfill", "--failed", "--url", url, "--format", "json"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [r["partition_key"] for r in json.loads(result.stdout)["rows"]] == [key]
    wait_for(lambda: len(runs(instance, DagsterRunStatus.SUCCESS)) == 2, 300, process, "the backfill's run")
    wait_for(lambda: not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots, 120,
             process, "every gpu slot to be free once every run ended")


def assert_each_clip_published_once(home: Home, warehouse: ParquetWarehouse) -> None:
    clips = warehouse.query("SELECT partition_key, status FROM clips")
    assert len(clips) == 2 and set(clips.status) == {"published"}
    ledger = warehouse.query("SELECT clip_id, gpu_seconds FROM cost_ledger")
    assert len(ledger) == 2 and ledger.clip_id.is_unique and (ledger.gpu_seconds > 0).all()
    assert len(list(home.store.glob("*/*.mp4"))) == 2  # each clip published exactly once


@pytest.mark.chaos
def test_a_killed_run_coordinator_frees_its_gpu_slot_and_its_orphan_publishes_nothing(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    # the multiprocess executor (in process is the default): a coordinator with step processes to orphan
    env = {**os.environ, "SORA_ASSETS_HOME": str(home.root), "SORA_ASSETS_CHECKPOINT_EVERY": "5",
           "SORA_ASSETS_FAILPOINTS": "generate.after_step=6:killparent", "SORA_ASSETS_EXECUTOR": "multiprocess"}
    # the shipped monitoring clock: the orphaned step must be fenced within the real grace period
    with running_dagster_dev(tmp_path, env, monitoring=None) as (process, port, dagster_home):
        url = f"http://127.0.0.1:{port}"
        env["DAGSTER_HOME"] = str(dagster_home)
        wait_for(lambda: shard_statuses(url), 120, process, "the webserver")
        marks = [("webserver", time.monotonic())]
        batch = tmp_path / "night.jsonl"
        batch.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        submit_file(home, batch)

        with DagsterInstance.from_config(str(dagster_home)) as instance:
            (victim,) = wait_for(lambda: runs(instance, DagsterRunStatus.FAILURE), 240, process,
                                 "the killed coordinator's run to be marked failed")
            marks.append(("victim failed", time.monotonic()))
            assert len(list(home.failpoints.iterdir())) == 1  # one coordinator killed
            (survivor,) = wait_for(lambda: runs(instance, DagsterRunStatus.SUCCESS), NEXT_SHARD_BOUND_S, process,
                                   "the other shard's render to get the gpu slot and finish")
            marks.append(("survivor done", time.monotonic()))
            assert survivor.tags["dagster/partition"] != victim.tags["dagster/partition"]
            assert step_events(instance, survivor.run_id, DagsterEventType.STEP_START, "rendered_clips")

            # the orphan was fenced: it did not finish its step for a failed run, and nothing downstream ran
            wait_for(lambda: step_events(instance, victim.run_id, DagsterEventType.STEP_FAILURE, "rendered_clips"),
                     60, process, "the orphaned render step to stop")
            marks.append(("orphan stopped", time.monotonic()))
            assert not step_events(instance, victim.run_id, DagsterEventType.STEP_SUCCESS, "rendered_clips")
            logs = " ".join(e.user_message or "" for e in instance.all_logs(victim.run_id))
            assert "fenced" in logs
            key = victim.tags["dagster/partition"]
            warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
            assert warehouse.read("cost_ledger", key).empty

            backfill_the_killed_shard(instance, url, env, process, key)
            marks.append(("backfill done and every slot free", time.monotonic()))

        print("timeline:", [(name, round(at - marks[0][1], 1)) for name, at in marks])
        assert_each_clip_published_once(home, warehouse)


def test_a_killed_in_process_run_is_marked_failed_and_frees_its_gpu_slot(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The default executor (in process): the failpoint SIGKILLs the run process itself (steps and coordinator
    are one process, nothing is orphaned). The run is marked failed, its `gpu` slot is freed, the other shard
    renders, and the backfill finishes the killed one: each clip published once, one ledger row each."""
    home = Home.from_env(tmp_path / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    env = {key: value for key, value in os.environ.items() if key != "SORA_ASSETS_EXECUTOR"}
    env.update({"SORA_ASSETS_HOME": str(home.root), "SORA_ASSETS_CHECKPOINT_EVERY": "5",
                "SORA_ASSETS_FAILPOINTS": "generate.after_step=6:kill"})
    with running_dagster_dev(tmp_path, env) as (process, port, dagster_home):
        url = f"http://127.0.0.1:{port}"
        env["DAGSTER_HOME"] = str(dagster_home)
        wait_for(lambda: shard_statuses(url), 120, process, "the webserver")
        batch = tmp_path / "night.jsonl"
        batch.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        submit_file(home, batch)

        with DagsterInstance.from_config(str(dagster_home)) as instance:
            (victim,) = wait_for(lambda: runs(instance, DagsterRunStatus.FAILURE), 240, process,
                                 "the killed run to be marked failed")
            assert len(list(home.failpoints.iterdir())) == 1  # one process killed
            (survivor,) = wait_for(lambda: runs(instance, DagsterRunStatus.SUCCESS), NEXT_SHARD_BOUND_S, process,
                                   "the other shard's render to get the gpu slot and finish")
            assert survivor.tags["dagster/partition"] != victim.tags["dagster/partition"]
            key = victim.tags["dagster/partition"]
            # in process: the render step never reported success or failure for the dead run, nor wrote rows
            assert not step_events(instance, victim.run_id, DagsterEventType.STEP_SUCCESS, "rendered_clips")
            warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
            assert warehouse.read("cost_ledger", key).empty

            backfill_the_killed_shard(instance, url, env, process, key)

        assert_each_clip_published_once(home, warehouse)
