"""The window sensor: launches each shard's render run when its planned start arrives, and re-plans."""

import hashlib
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sora_assets.core.batch import DEFAULT_ACCOUNT
from sora_assets.core.fair_share import Candidate, select_within_cap
from sora_assets.core.runtime_limits import MAX_RUNTIME_TAG, render_max_runtime_s
from sora_assets.defs.intake import RENDER_JOB, TIER_PRIORITY
from sora_assets.defs.jobs import PLAN_JOB, plan_job, render_shard_job
from sora_assets.defs.partitions import GPU_POOL
from sora_assets.defs.planning import ACTIVE, shards_with_runs
from sora_assets.planning import latest_plan, published_shards, registered_shards
from sora_assets.resources.home import HomeResource
from sora_assets.resources.planner import PlannerResource
from sora_assets.resources.warehouse import ParquetWarehouse


def ensure_gpu_pool(instance: DagsterInstance, gpus: int) -> bool:
    """Keep the `gpu` pool's limit equal to the planner's GPU count; True if it changed."""
    info = instance.event_log_storage.get_concurrency_info(GPU_POOL)
    if info.slot_count == gpus:
        return False
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, gpus)
    return True


def due_runs(instance: DagsterInstance, home: HomeResource, planner: PlannerResource,
             warehouse: ParquetWarehouse | str, now: datetime) -> tuple[list[RunRequest], list[str]]:
    """Run requests for shards whose planned start has arrived, plus a re-plan request when needed.

    Returns the requests and the reasons for re-planning (empty when the plan is current). Run keys
    are `<shard>@<planned start>`, so evaluating twice at the same clock launches nothing new.
    """
    layout = home.home
    shards = {s["key"]: s for s in registered_shards(layout)}
    # a succeeded run is a published shard (its ledger file exists): only active and failed runs are asked for
    done = published_shards(warehouse) | shards_with_runs(instance, ACTIVE + [DagsterRunStatus.FAILURE])
    pending = {key for key in shards if key not in done}
    plan = latest_plan(layout)
    reasons: list[str] = []
    requests: list[RunRequest] = []
    if plan is None:
        if pending:
            reasons.append(f"{len(pending)} shard(s) and no plan yet")
    else:
        planned = {a["shard"]: a for a in plan["assignments"]}
        unplanned = sorted(pending - set(planned) - set(plan["estimates"]))
        if unplanned:
            reasons.append(f"{len(unplanned)} shard(s) registered after the plan")
        grace = timedelta(minutes=planner.step_minutes)
        due: list[str] = []
        for key in sorted(pending):
            assignment = planned.get(key)
            if assignment is None:
                if key in plan["estimates"]:  # nothing to render (all cached or rejected): publish now
                    requests.append(_render_request(key, shards[key], "no-gpu", plan["plan_id"], 0.0))
                continue
            start = datetime.fromisoformat(assignment["start"])
            if start > now:
                continue
            if now - start > grace:  # its window passed without a run: the plan is stale for it
                reasons.append(f"{key} missed its planned start {assignment['start']}")
                continue
            due.append(key)
        # fair share: the plan keeps each account's free shards under the cap; runs that overrun their estimate
        # could still stack up, so the launch counts what is in progress now
        active = [_candidate(k, shards[k]) for k in shards_with_runs(instance, ACTIVE) if k in shards]
        due.sort(key=lambda k: (planned[k]["start"], k))
        launch, _held = select_within_cap([_candidate(k, shards[k]) for k in due], active, planner.free_share_cap)
        requests += [_render_request(c.key, shards[c.key], planned[c.key]["start"], plan["plan_id"],
                                     float(planned[c.key].get("est_gpu_seconds") or 0.0)) for c in launch]
    if reasons:
        digest = hashlib.sha256("|".join(sorted(pending)).encode() + now.strftime("%Y%m%d%H").encode()).hexdigest()
        requests.append(RunRequest(run_key=f"plan:{digest[:16]}", job_name=PLAN_JOB,
                                   run_config={"ops": {"render_plan": {"config": {"now": now.isoformat()}}}},
                                   tags={"sora_assets/replan": "; ".join(reasons)[:200]}))
    return requests, reasons


def _candidate(key: str, shard: dict) -> Candidate:
    return Candidate(key, shard["tier"], shard.get("account", DEFAULT_ACCOUNT))


def _render_request(key: str, shard: dict, start: str, plan_id: str, est_gpu_seconds: float) -> RunRequest:
    return RunRequest(run_key=f"{key}@{start}", partition_key=key, job_name=RENDER_JOB,
                      tags={"dagster/priority": str(TIER_PRIORITY.get(shard["tier"], 0)),
                            # run monitoring ends a hung run (and frees its gpu slot) past this
                            MAX_RUNTIME_TAG: str(render_max_runtime_s(est_gpu_seconds)),
                            "sora_assets/batch_id": shard["batch_id"], "sora_assets/plan_id": plan_id,
                            "sora_assets/planned_start": start, "sora_assets/tier": shard["tier"],
                            "sora_assets/account": shard.get("account", DEFAULT_ACCOUNT)})


@sensor(jobs=[render_shard_job, plan_job], minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="In planned launch mode: launches each shard's run when its planned window opens "
                    "(priority by tier, under the `gpu` pool), and re-plans new or missed shards.")
def plan_window_sensor(context: SensorEvaluationContext, home: HomeResource, planner: PlannerResource,
                       warehouse: ParquetWarehouse) -> SensorResult | SkipReason:
    if planner.launch_mode != "planned":
        return SkipReason("launch_mode is 'now': the inbox sensor launches shards as they arrive")
    if ensure_gpu_pool(context.instance, planner.gpus):
        context.log.info(f"set the {GPU_POOL} pool limit to {planner.gpus}")
    requests, reasons = due_runs(context.instance, home, planner, warehouse, datetime.now(UTC))
    for reason in reasons:
        context.log.info(f"re-planning: {reason}")
    return SensorResult(run_requests=requests)
