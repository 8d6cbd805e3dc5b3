"""render_plan and the window sensor on a simulated clock: exactly the right runs, re-plans, the GPU pool."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context, materialize
from dagster._core.test_utils import create_run_for_test, instance_for_test

from sora_assets.core.intake.inbox import ingest_file
from sora_assets.core.storage.home import Home
from sora_assets.defs.jobs import PLAN_JOB
from sora_assets.defs.launching import due_runs, ensure_gpu_pool, plan_window_sensor
from sora_assets.defs.planning import render_plan
from sora_assets.resources.home import default_resources
from sora_assets.resources.planner import PlannerResource
from sora_assets.runs import RENDER_JOB
from sora_assets.services.planning import latest_plan

BATCH = b"\n".join([
    b'{"prompt": "a paid shot of the sea", "tier": "paid", "width": 64, "height": 64, "num_frames": 9}',
    b'{"prompt": "a free shot of a hill", "width": 64, "height": 64, "num_frames": 9}',
    b'{"prompt": "a free shot of a lake", "width": 64, "height": 64, "num_frames": 9}',
    b'{"prompt": "a free shot of a road", "width": 64, "height": 64, "num_frames": 9}',
])
T14 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 21) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def submit(home: Home, name: str = "night.jsonl", content: bytes = BATCH) -> list[str]:
    source = home.inbox / name
    source.write_bytes(content)
    return ingest_file(home, source, shard_size=2).shard_keys


def resources(home: Home, **planner: object) -> dict:
    found = default_resources(home)
    # bounded by solver work, never by the clock, so the plan is the same on every machine and load
    planner = {"time_limit_s": None, "node_limit": 20_000, **planner}
    found["planner"] = PlannerResource(launch_mode="planned", **planner)
    return found


def make_plan(home: Home, instance: DagsterInstance, now: datetime, **planner: object) -> dict:
    result = materialize([render_plan], resources=resources(home, **planner), instance=instance,
                         run_config={"ops": {"render_plan": {"config": {"now": now.isoformat()}}}})
    assert result.success
    return latest_plan(home)


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as found:
        yield found


def test_render_plan_defers_to_off_peak_and_lands_in_the_warehouse(home_with_model: Home, instance) -> None:
    keys = submit(home_with_model)
    plan = make_plan(home_with_model, instance, T14)
    assert sorted(a["shard"] for a in plan["assignments"]) == sorted(keys)
    assert all(datetime.fromisoformat(a["start"]) >= at(22) for a in plan["assignments"])
    # paid before free is a priority (lateness weight, launch order), not a rule: both take the cheap hours
    assert plan["savings_pct"] == pytest.approx(20.0, abs=0.01)  # off-peak is 20% cheaper than 14:00 peak
    assert plan["late"] == [] and plan["status"] == "optimal"
    resources_ = resources(home_with_model)
    rows = resources_["warehouse"].query("SELECT * FROM render_plan ORDER BY planned_start")
    assert list(rows.partition_key) == [a["shard"] for a in plan["assignments"]]
    assert (rows.deadline_slack_s > 0).all() and (rows.est_cost_usd > 0).all()
    assert set(rows.estimate_source) == {"prior"}  # no history yet: the documented prior
    event = instance.get_latest_materialization_event(render_plan.key)
    assert event.asset_materialization.metadata["late_shards"].value == 0


def test_window_sensor_launches_exactly_the_due_shards(home_with_model: Home, instance) -> None:
    submit(home_with_model)
    plan = make_plan(home_with_model, instance, T14)
    starts = {a["shard"]: datetime.fromisoformat(a["start"]) for a in plan["assignments"]}
    planner = PlannerResource(launch_mode="planned")
    home = resources(home_with_model)["home"]
    root = str(home_with_model.warehouse)

    requests, reasons = due_runs(instance, home, planner, root, at(14, 5))
    assert requests == [] and reasons == []  # nothing due before the off-peak window

    first = min(starts.values())
    requests, _ = due_runs(instance, home, planner, root, first)
    due = sorted(k for k, s in starts.items() if s <= first)
    assert sorted(r.partition_key for r in requests) == due
    assert all(r.job_name == RENDER_JOB and r.tags["dagster/priority"] == "10" for r in requests)  # paid first
    again, _ = due_runs(instance, home, planner, root, first)
    assert [r.run_key for r in again] == [r.run_key for r in requests]  # idempotent: same run keys

    for request in requests:  # the daemon launched them
        create_run_for_test(instance, job_name=RENDER_JOB, status=DagsterRunStatus.STARTED,
                            tags={"dagster/partition": request.partition_key})
    second = sorted(set(starts.values()))[1]
    requests, _ = due_runs(instance, home, planner, root, second)
    assert sorted(r.partition_key for r in requests) == sorted(k for k, s in starts.items() if s == second)


def test_a_missed_window_is_replanned_not_launched_late(home_with_model: Home, instance) -> None:
    submit(home_with_model)
    plan = make_plan(home_with_model, instance, T14)
    last = max(datetime.fromisoformat(a["start"]) for a in plan["assignments"])
    late_clock = last + timedelta(hours=1)
    requests, reasons = due_runs(instance, resources(home_with_model)["home"], PlannerResource(launch_mode="planned"),
                                 str(home_with_model.warehouse), late_clock)
    assert [r.job_name for r in requests] == [PLAN_JOB]
    assert len(reasons) == len(plan["assignments"]) and all("missed its planned start" in r for r in reasons)
    replanned = make_plan(home_with_model, instance, late_clock)
    assert all(datetime.fromisoformat(a["start"]) >= late_clock for a in replanned["assignments"])


def test_new_shards_trigger_a_replan_and_the_sensor_sets_the_gpu_pool(home_with_model: Home, instance) -> None:
    submit(home_with_model)
    make_plan(home_with_model, instance, T14)
    later = submit(home_with_model, "later.jsonl", BATCH.replace(b"sea", b"bay"))
    planner = PlannerResource(launch_mode="planned", gpus=3)
    requests, reasons = due_runs(instance, resources(home_with_model)["home"], planner,
                                 str(home_with_model.warehouse), at(15))
    assert reasons == [f"{len(later)} shard(s) registered after the plan"]
    assert [r.job_name for r in requests] == [PLAN_JOB]
    assert ensure_gpu_pool(instance, 3) is True
    assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 3
    assert ensure_gpu_pool(instance, 3) is False
    with build_sensor_context(instance=instance, resources={**resources(home_with_model), "planner": planner}) \
            as context:
        result = plan_window_sensor(context)
    assert [r.job_name for r in result.run_requests] == [PLAN_JOB]


def test_in_now_mode_the_window_sensor_stands_aside(home_with_model: Home, instance) -> None:
    with build_sensor_context(instance=instance, resources={**resources(home_with_model),
                                                            "planner": PlannerResource()}) as context:
        result = plan_window_sensor(context)
    assert "launch_mode is 'now'" in result.skip_message


@pytest.mark.slow
def test_plan_cli_prints_cost_savings_and_late_shards(home_with_model: Home, tmp_path) -> None:
    submit(home_with_model, content=BATCH + b'\n{"prompt": "due soon", "deadline": "2026-11-21T14:00:00+00:00"}')
    env = {"SORA_ASSETS_HOME": str(home_with_model.root), "PATH": "/usr/bin:/bin"}
    import os

    result = subprocess.run([sys.executable, "-m", "sora_assets.cli", "plan", "--now", T14.isoformat(), "--format",
                             "json"], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["fcfs_cost_usd"] > document["total_cost_usd"] > 0
    assert document["savings_pct"] > 0
    late_shards = {x["shard"] for x in document["late"]}
    assert len(late_shards) == 1  # the shard holding the row due at 14:00 (now) cannot finish by then
    table = subprocess.run([sys.executable, "-m", "sora_assets.cli", "plan", "--now", T14.isoformat()],
                           capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert table.returncode == 0 and "savings_pct" in table.stdout and "fcfs_cost_usd" in table.stdout


def test_plan_accuracy_view_compares_the_latest_estimate_with_the_ledger(tmp_path) -> None:
    from sora_assets.core.warehouse.reports import report_sql
    from sora_assets.resources.warehouse import ParquetWarehouse

    warehouse = ParquetWarehouse(root=str(tmp_path / "wh"), db_path=str(tmp_path / "wh.duckdb"))
    plan = {"partition_key": "b-s000", "batch_id": "b", "tier": "paid"}
    warehouse.write("render_plan", "plan-1", "render_plan",
                    [{**plan, "plan_id": "plan-1", "est_gpu_seconds": 50.0, "est_cost_usd": 0.05, "recorded_at": T14}])
    warehouse.write("render_plan", "plan-2", "render_plan",  # a re-plan: its estimate is the one compared
                    [{**plan, "plan_id": "plan-2", "est_gpu_seconds": 100.0, "est_cost_usd": 0.10,
                      "recorded_at": at(15)}])
    ledger = {"partition_key": "b-s000", "batch_id": "b", "recorded_at": at(23)}
    warehouse.write("cost_ledger", "b-s000", "published_clips", [
        {**ledger, "clip_id": "c1", "gpu_seconds": 60.0, "cost_usd": 0.06, "cache_hit": False},
        {**ledger, "clip_id": "c2", "gpu_seconds": 60.0, "cost_usd": 0.06, "cache_hit": False},
        {**ledger, "clip_id": "c3", "gpu_seconds": 0.0, "cost_usd": 0.0, "cache_hit": True}])
    sql, params = report_sql("plan_accuracy")
    (row,) = warehouse.query(sql, params).to_dict(orient="records")
    assert (row["est_gpu_seconds"], row["actual_gpu_seconds"], row["error_pct"]) == (100.0, 120.0, 20.0)
    assert row["est_cost_usd"] == pytest.approx(0.10) and row["actual_cost_usd"] == pytest.approx(0.12)
