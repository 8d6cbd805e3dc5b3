"""Issue 19: a power loss mid-night, in a test. Every process of a running `dagster dev` is SIGKILLed at once
while a shard renders (its render hangs at a failpoint, so the kill lands mid-step); the run storage is left
with a STARTED run that has no process and a `gpu` slot it claims. `dagster dev` is restarted on the same
DAGSTER_HOME and `sora-assets recover` marks the run failed, frees the slot and backfills the shard: the batch
finishes with every clip published once and one ledger row each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from sora_assets.core.storage.home import Home
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.services.backfill import shard_statuses
from sora_assets.services.runner import submit_file
from sora_assets_tests.defs.test_dagster_dev import running_dagster_dev
from sora_assets_tests.processes import power_loss
from sora_assets_tests.test_backfill_e2e import ROWS, runs, wait_for

pytestmark = pytest.mark.slow  # in the default run since the shard job runs in process (~1-2 min)


def test_after_a_power_loss_recover_finishes_the_batch(tmp_path: Path, tiny_model_dir: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    env = {**os.environ, "SORA_ASSETS_HOME": str(home.root), "SORA_ASSETS_CHECKPOINT_EVERY": "5",
           "SORA_ASSETS_FAILPOINTS": "generate.after_step=7:hang"}
    first = tmp_path / "before"
    first.mkdir()
    with running_dagster_dev(first, env, dagster_home=tmp_path / "dagster_home") as (process, port, dagster_home):
        wait_for(lambda: shard_statuses(f"http://127.0.0.1:{port}"), 120, process, "the webserver")
        batch = tmp_path / "night.jsonl"
        batch.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        submit_file(home, batch)
        wait_for(lambda: any(home.failpoints.glob("*")), 300, process, "the render to reach step 7 and hang")
        killed = power_loss(process)
        assert len(killed) >= 4  # webserver, daemon, code server, run worker, step process...

    with DagsterInstance.from_config(str(dagster_home)) as instance:  # what the crash left behind
        (stranded,) = runs(instance, DagsterRunStatus.STARTED)
        key = stranded.tags["dagster/partition"]
        held = instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
        assert [slot.run_id for slot in held] == [stranded.run_id]

    second = tmp_path / "after"
    second.mkdir()
    env["DAGSTER_HOME"] = str(dagster_home)
    with running_dagster_dev(second, env, dagster_home=dagster_home) as (process, port, _):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: shard_statuses(url), 120, process, "the restarted webserver")
        result = subprocess.run(["sora-assets", "recover", "--url", url, "--format", "json"], capture_output=True,
                                text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert [r["run_id"] for r in report["rows"] if r["action"] == "marked failed"] == [stranded.run_id]
        assert report["slots_freed"] >= 1 and report["backfilled"] == [key] and report["backfill_id"]
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            wait_for(lambda: runs(instance, DagsterRunStatus.SUCCESS), 300, process, "the backfill's run")
            assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
        again = subprocess.run(["sora-assets", "recover", "--url", url, "--format", "json"], capture_output=True,
                               text=True, env=env, timeout=120)
        assert json.loads(again.stdout)["marked_failed"] == 0  # nothing left to recover

    warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
    clips = warehouse.query("SELECT row, status, resumed_from_step FROM clips")
    assert sorted(clips.row) == [1, 2] and set(clips.status) == {"published"}
    assert sorted(clips.resumed_from_step) == [0, 5]  # the hung clip resumed from its step-5 checkpoint
    ledger = warehouse.query("SELECT clip_id, gpu_seconds FROM cost_ledger")
    assert len(ledger) == 2 and ledger.clip_id.is_unique and (ledger.gpu_seconds > 0).all()
    assert len(list(home.store.glob("*/*.mp4"))) == 2
