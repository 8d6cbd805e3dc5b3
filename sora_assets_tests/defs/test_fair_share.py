"""Fair share at launch: the inbox sensor (launch now) and the window sensor (planned) hold free shards of an
account that already has `cap` in progress, and launch the next one when one finishes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterRunStatus, build_sensor_context
from dagster._core.test_utils import create_run_for_test, instance_for_test

from sora_assets.core.intake.inbox import ingest_file
from sora_assets.core.storage.home import Home
from sora_assets.defs.intake import inbox_sensor
from sora_assets.defs.launching import due_runs
from sora_assets.defs.partitions import SHARDS
from sora_assets.resources.home import HomeResource
from sora_assets.resources.planner import PlannerResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.runs import RENDER_JOB

ROWS = [{"prompt": f"a field number {i}", "account": "studio-a"} for i in range(5)] + [
    {"prompt": "a lone tree", "account": "studio-b"}]
BATCH = "\n".join(json.dumps(r) for r in ROWS).encode()
T = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as found:
        yield found


def start(instance, key: str) -> str:
    return create_run_for_test(instance, job_name=RENDER_JOB, status=DagsterRunStatus.STARTED,
                               tags={"dagster/partition": key}).run_id


def finish(instance, run_id: str) -> None:
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=RENDER_JOB), run_id)


def tick(instance, home: Home, cap: int = 3) -> list[str]:
    resources = {"home": HomeResource(path=str(home.root), shard_size=1),
                 "planner": PlannerResource(free_share_cap=cap),
                 "warehouse": ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))}
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = inbox_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(SHARDS, list(request.partition_keys))
    return [r.partition_key for r in result.run_requests]


def test_inbox_sensor_launches_three_then_the_next_when_one_finishes(home: Home, instance) -> None:
    (home.inbox / "crowd.jsonl").write_bytes(BATCH)
    launched = tick(instance, home)
    accounts = json.loads(next(home.batches.glob("*/batch.json")).read_text())["accounts"]
    assert sorted(accounts[k] for k in launched) == ["studio-a"] * 3 + ["studio-b"]
    runs = {key: start(instance, key) for key in launched}  # the daemon launched them
    assert tick(instance, home) == []  # studio-a is at its cap; studio-b has nothing left
    first_a = next(k for k in launched if accounts[k] == "studio-a")
    finish(instance, runs[first_a])
    (next_one,) = tick(instance, home)
    assert accounts[next_one] == "studio-a" and next_one not in launched


def test_window_sensor_launches_within_the_cap(home: Home, instance) -> None:
    source = home.inbox / "crowd.jsonl"
    source.write_bytes(BATCH)
    result = ingest_file(home, source, shard_size=1)
    home.plans.mkdir(parents=True, exist_ok=True)
    plan = {"plan_id": "plan-test", "estimates": {}, "assignments": [
        {"shard": k, "start": T.isoformat(), "deadline": T.replace(day=22).isoformat(), "est_gpu_seconds": 60.0}
        for k in result.shard_keys]}
    (home.plans / "latest.json").write_text(json.dumps(plan))
    planner = PlannerResource(launch_mode="planned", free_share_cap=3)
    resource = HomeResource(path=str(home.root))
    requests, reasons = due_runs(instance, resource, planner, str(home.warehouse), T)
    launched = [r.partition_key for r in requests]
    assert reasons == [] and sorted(result.shard_accounts[k] for k in launched) == ["studio-a"] * 3 + ["studio-b"]
    assert {r.tags["sora_assets/account"] for r in requests} == {"studio-a", "studio-b"}
    runs = {key: start(instance, key) for key in launched}
    finish(instance, runs[launched[0]])
    ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db)).write(  # it published its ledger
        "cost_ledger", launched[0], "published_clips", [{"partition_key": launched[0], "clip_id": "c"}])
    (later,), _ = due_runs(instance, resource, planner, str(home.warehouse), T)
    assert result.shard_accounts[later.partition_key] == "studio-a" and later.partition_key not in launched
