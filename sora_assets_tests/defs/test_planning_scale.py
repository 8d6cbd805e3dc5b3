"""Planning at night scale: one studio's 220 free shards plan and launch in the first window; plans read the
rows kept per shard and never validate prompts again; with no usable plan, GPUs still get work; a failed plan
is retried with backoff, not in a loop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test, instance_for_test

from sora_assets.core.intake.inbox import ingest_file
from sora_assets.core.storage.home import Home
from sora_assets.defs.jobs import PLAN_JOB
from sora_assets.defs.launching import due_runs
from sora_assets.resources.home import default_resources
from sora_assets.resources.planner import PlannerResource
from sora_assets.runs import RENDER_JOB
from sora_assets.services.planning import build_plan, plan_document, save_plan

T1630 = datetime(2026, 11, 21, 16, 30, tzinfo=UTC)
BOUNDED = {"time_limit_s": None, "node_limit": 20_000}  # solver work, never the clock


def rows(n: int, account: str = "studio-a", paid_every: int = 0, deadline: str | None = None) -> bytes:
    """Wan-1.3B-sized rows (the cost model's prior: about 51 GPU-s per free clip)."""
    return "\n".join(json.dumps({"prompt": f"a lighthouse in the fog, take {i}", "width": 832, "height": 480,
                                 "num_frames": 81, "account": account, **({"deadline": deadline} if deadline else {}),
                                 **({"tier": "paid"} if paid_every and i % paid_every == 0 else {})})
                     for i in range(n)).encode()


def submit(home: Home, content: bytes, name: str = "night.jsonl") -> list[str]:
    """Register as the inbox sensor would, submitted at 16:30 on the test's clock (deadlines count from it)."""
    source = home.inbox / name
    source.write_bytes(content)
    result = ingest_file(home, source, shard_size=1)
    record_path = home.batches / result.batch_id / "batch.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "submitted_at": T1630.isoformat()}))
    return result.shard_keys


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as found:
        yield found


def plan_now(home: Home, planner: PlannerResource, now: datetime) -> dict:
    found = default_resources(home)
    result = build_plan(home, planner, found["video_model"], found["warehouse"], found["store"], now)
    document = plan_document(result)
    save_plan(home, document)
    return document


def test_one_studios_220_free_shards_plan_and_launch_in_the_first_window(home_with_model: Home, instance) -> None:
    """3.1 GPU-hours due at 23:00: the cheapest plan runs it all in the 22:00 off-peak hour, which needs more
    than the cap's 3 GPUs at once. Alone, the studio gets them (the old rule made this night infeasible)."""
    keys = submit(home_with_model, rows(220, deadline="23:00"))
    planner = PlannerResource(launch_mode="planned", gpus=8, free_share_cap=3, **BOUNDED)
    plan = plan_now(home_with_model, planner, T1630)
    assert sorted(a["shard"] for a in plan["assignments"]) == sorted(keys)
    assert plan["late"] == [] and plan["max_inflation"] <= 0.10
    assert not any(a["held_by_cap"] for a in plan["assignments"]), "alone, the cap never binds"
    starts = [datetime.fromisoformat(a["start"]) for a in plan["assignments"]]
    assert min(starts).hour == 22 and max(starts).hour == 22  # all of it in the first off-peak window
    spans = [(datetime.fromisoformat(a["start"]), datetime.fromisoformat(a["end"])) for a in plan["assignments"]]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most > 3, "one studio alone is not held to the cap"
    first = min(starts)
    at_first = {a["gpu_slot"] for a in plan["assignments"] if datetime.fromisoformat(a["start"]) == first}
    home = default_resources(home_with_model)["home"]
    assert due_runs(instance, home, planner, str(home_with_model.warehouse), first - timedelta(minutes=5))[0] == []
    requests, reasons = due_runs(instance, home, planner, str(home_with_model.warehouse), first)
    assert reasons == [] and len(requests) == len(at_first)  # the cap's 3, plus GPUs nobody else waits for
    assert all(r.job_name == RENDER_JOB and r.tags["sora_assets/account"] == "studio-a" for r in requests)


def test_plans_read_the_rows_kept_per_shard_and_never_validate_prompts(home_with_model: Home, monkeypatch) -> None:
    import sora_assets.core.intake.validation as validation
    import sora_assets.services.planning as planning

    def forbidden(*_args, **_kwargs):
        raise AssertionError("planning must not validate prompts (Great Expectations, pre-filter)")

    monkeypatch.setattr(validation, "validate_rows", forbidden)
    monkeypatch.setattr("sora_assets.core.safety.prefilter.default_prefilter", forbidden)
    monkeypatch.setattr("sora_assets.core.intake.expectations.run_expectations", forbidden)
    keys = submit(home_with_model, rows(12, paid_every=3))
    planner = PlannerResource(launch_mode="planned", gpus=2, **BOUNDED)
    first = plan_now(home_with_model, planner, T1630)
    assert sorted(first["estimates"]) == sorted(keys)
    assert all((home_with_model.plans / "rows" / f"{k}.json").exists() for k in keys)
    monkeypatch.setattr(planning, "estimate_specs", forbidden)  # the second plan reads the kept rows only
    second = plan_now(home_with_model, planner, T1630)
    assert second["total_cost_usd"] == pytest.approx(first["total_cost_usd"])
    assert {e["gpu_seconds"] for e in second["estimates"].values()} == {e["gpu_seconds"] for e in
                                                                        first["estimates"].values()}


def test_without_a_plan_gpus_get_work_by_priority_and_a_failed_plan_backs_off(home_with_model: Home,
                                                                              instance) -> None:
    submit(home_with_model, rows(6, paid_every=3))  # rows 0 and 3 paid
    planner = PlannerResource(launch_mode="planned", gpus=3)
    home = default_resources(home_with_model)["home"]
    root = str(home_with_model.warehouse)
    requests, reasons = due_runs(instance, home, planner, root, T1630)
    plans = [r for r in requests if r.job_name == PLAN_JOB]
    renders = [r for r in requests if r.job_name == RENDER_JOB]
    assert len(plans) == 1 and reasons == ["6 shard(s) and no plan yet"]
    assert len(renders) == 3 and [r.tags["sora_assets/tier"] for r in renders][:2] == ["paid", "paid"]
    again, _ = due_runs(instance, home, planner, root, T1630 + timedelta(minutes=1))
    assert [r.run_key for r in again if r.job_name == PLAN_JOB] == [plans[0].run_key]  # one change, one plan
    for r in renders:  # the daemon launched the fallback runs
        create_run_for_test(instance, job_name=RENDER_JOB, status=DagsterRunStatus.STARTED,
                            tags={"dagster/partition": r.partition_key})
    create_run_for_test(instance, job_name=PLAN_JOB, status=DagsterRunStatus.FAILURE)
    requests, reasons = due_runs(instance, home, planner, root, T1630 + timedelta(minutes=2))
    assert not [r for r in requests if r.job_name == PLAN_JOB], "a failed plan is not retried at once"
    assert any("re-plan waits: 1 plan run(s) failed" in r for r in reasons)
    assert not [r for r in requests if r.job_name == RENDER_JOB]  # all 3 GPUs busy with fallback runs
