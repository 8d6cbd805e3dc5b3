"""The window sensor: launches each shard's render run when its planned start arrives, and re-plans.

A re-plan is requested on a real change only (shards registered after the plan, a planned start that
passed without a run), once per change; when plan runs fail, the next request waits out a backoff that
doubles per consecutive failure. While there is no usable plan (none yet, or the last plan run failed)
GPUs do not idle: shards are launched by priority (paid first, then earliest submitted, which is the
earliest default deadline) into the GPUs no active run holds.
"""

import hashlib
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sora_assets.core.intake.batch_files import DEFAULT_ACCOUNT
from sora_assets.core.planning.fair_share import Candidate, select_within_cap
from sora_assets.core.planning.runtime_limits import MAX_RUNTIME_TAG, render_max_runtime_s
from sora_assets.defs.jobs import PLAN_JOB, plan_job, render_shard_job
from sora_assets.defs.partitions import GPU_POOL
from sora_assets.resources.home import HomeResource
from sora_assets.resources.planner import PlannerResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.runs import ACTIVE, TIER_PRIORITY, render_request, shards_with_runs
from sora_assets.services.planning import latest_plan, published_shards, registered_shards


def ensure_gpu_pool(instance: DagsterInstance, gpus: int) -> bool:
    """Keep the `gpu` pool's limit equal to the planner's GPU count; True if it changed."""
    info = instance.event_log_storage.get_concurrency_info(GPU_POOL)
    if info.slot_count == gpus:
        return False
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, gpus)
    return True


REPLAN_BACKOFF_S = 60.0  # after one failed plan run; doubles per consecutive failure
REPLAN_BACKOFF_MAX_S = 3600.0


def plan_backoff(instance: DagsterInstance, now: datetime) -> tuple[bool, str]:
    """(wait, why): whether the last plan runs failed recently enough that a new one must wait.

    Reads only the last few plan runs (newest first), never the whole history."""
    runs = instance.get_runs(filters=RunsFilter(job_name=PLAN_JOB), limit=8)
    failures = 0
    for run in runs:
        if run.status != DagsterRunStatus.FAILURE:
            break
        failures += 1
    if not failures:
        return False, ""
    record = instance.get_run_record_by_id(runs[0].run_id)
    ended = record.end_time if record and record.end_time else now.timestamp()
    wait = min(REPLAN_BACKOFF_MAX_S, REPLAN_BACKOFF_S * 2 ** (failures - 1))
    left = ended + wait - now.timestamp()
    return left > 0, f"{failures} plan run(s) failed; next try in {max(0.0, left):.0f} s"


def last_plan_failed(instance: DagsterInstance) -> bool:
    runs = instance.get_runs(filters=RunsFilter(job_name=PLAN_JOB), limit=1)
    return bool(runs) and runs[0].status == DagsterRunStatus.FAILURE


def fallback_requests(instance: DagsterInstance, shards: dict[str, dict], pending: set[str],
                      planner: PlannerResource, active: set[str], why: str) -> list[RunRequest]:
    """No usable plan: launch by priority into the GPUs no active run holds, under work-conserving fair share."""
    idle = max(0, planner.gpus - len(active))
    if not idle:
        return []
    order = sorted(pending, key=lambda k: (-TIER_PRIORITY.get(shards[k]["tier"], 0), shards[k]["submitted_at"], k))
    launch, _held = select_within_cap([_candidate(k, shards[k]) for k in order],
                                      [_candidate(k, shards[k]) for k in active if k in shards],
                                      planner.free_share_cap, idle_gpus=idle)
    return [_render_request(c.key, shards[c.key], "fallback", why, 0.0) for c in launch[:idle]]


def _pending_shards(instance: DagsterInstance, shards: dict[str, dict],
                    warehouse: ParquetWarehouse | str) -> tuple[set[str], set[str]]:
    """(pending, active): shards with no published ledger, no active run and no failed run; and those with an
    active run. A succeeded run is a published shard, so only active and failed runs are asked for."""
    active_keys = shards_with_runs(instance, ACTIVE)
    published = published_shards(warehouse)
    unpublished = sorted(k for k in shards if k not in published and k not in active_keys)
    done = published | active_keys | shards_with_runs(instance, [DagsterRunStatus.FAILURE], unpublished)
    return {key for key in shards if key not in done}, active_keys


def _walk_plan(plan: dict, planned: dict[str, dict], shards: dict[str, dict], pending: set[str], now: datetime,
               grace: timedelta) -> tuple[list[str], list[RunRequest], list[str], set[str]]:
    """(due, no-GPU requests, reasons, changes) over the pending shards in key order: a shard planned with
    nothing to render is published now; one whose planned start passed by more than `grace` without a run
    makes the plan stale for it; one whose start has arrived is due."""
    due: list[str] = []
    requests: list[RunRequest] = []
    reasons: list[str] = []
    changed: set[str] = set()
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
            changed.add(f"{key}@{assignment['start']}")
            continue
        due.append(key)
    return due, requests, reasons, changed


def _follow_plan(plan: dict, shards: dict[str, dict], pending: set[str], active_keys: set[str],
                 planner: PlannerResource, now: datetime) -> tuple[list[RunRequest], list[str], set[str]]:
    """(requests, reasons, changes) under a plan: launches for due shards within fair share, and the
    changes (shards registered after it, missed starts) that call for a re-plan."""
    planned = {a["shard"]: a for a in plan["assignments"]}
    reasons: list[str] = []
    changed: set[str] = set()
    unplanned = sorted(pending - set(planned) - set(plan["estimates"]))
    if unplanned:
        reasons.append(f"{len(unplanned)} shard(s) registered after the plan")
        changed |= set(unplanned)
    due, requests, missed, missed_changes = _walk_plan(plan, planned, shards, pending, now,
                                                       timedelta(minutes=planner.step_minutes))
    reasons += missed
    changed |= missed_changes
    # fair share: the plan keeps each account's free shards under the cap while others wait; runs that
    # overrun their estimate could still stack up, so the launch counts what is in progress now
    active = [_candidate(k, shards[k]) for k in active_keys if k in shards]
    due.sort(key=lambda k: (planned[k]["start"], k))
    launch, _held = select_within_cap([_candidate(k, shards[k]) for k in due], active, planner.free_share_cap,
                                      idle_gpus=max(0, planner.gpus - len(active)))
    requests += [_render_request(c.key, shards[c.key], planned[c.key]["start"], plan["plan_id"],
                                 float(planned[c.key].get("est_gpu_seconds") or 0.0)) for c in launch]
    return requests, reasons, changed


def _replan_request(instance: DagsterInstance, now: datetime, reasons: list[str],
                    changed: set[str]) -> RunRequest | None:
    """The plan run for these changes, or None (and a reason) while failed plan runs back off. The run key
    names the change, so one change asks for one plan; after a failure the same change may be asked again."""
    wait, why = plan_backoff(instance, now)
    if wait:
        reasons.append(f"re-plan waits: {why}")
        return None
    digest = hashlib.sha256("|".join(sorted(changed)).encode()).hexdigest()
    failures = why.split(" ")[0] if why else "0"
    return RunRequest(run_key=f"plan:{digest[:16]}:{failures}", job_name=PLAN_JOB,
                      run_config={"ops": {"render_plan": {"config": {"now": now.isoformat()}}}},
                      tags={"sora_assets/replan": "; ".join(reasons)[:200]})


def due_runs(instance: DagsterInstance, home: HomeResource, planner: PlannerResource,
             warehouse: ParquetWarehouse | str, now: datetime) -> tuple[list[RunRequest], list[str]]:
    """Run requests for shards whose planned start has arrived, plus a re-plan request when needed.

    Returns the requests and the reasons for re-planning (empty when the plan is current). Run keys
    are `<shard>@<planned start>`, so evaluating twice at the same clock launches nothing new; a
    re-plan's run key names the change (the shards it is about), so one change asks for one plan.
    """
    layout = home.home
    shards = {s["key"]: s for s in registered_shards(layout)}
    pending, active_keys = _pending_shards(instance, shards, warehouse)
    plan = latest_plan(layout)
    reasons: list[str] = []
    changed: set[str] = set()  # the shards a re-plan is about
    requests: list[RunRequest] = []
    if plan is None:
        if pending:
            reasons.append(f"{len(pending)} shard(s) and no plan yet")
            changed |= set(shards)  # registered shards: launches in the meantime are not a change
    else:
        requests, reasons, changed = _follow_plan(plan, shards, pending, active_keys, planner, now)
    if reasons:
        replan = _replan_request(instance, now, reasons, changed)
        if replan is not None:
            requests.append(replan)
    if pending and (plan is None or last_plan_failed(instance)):
        launched = {r.partition_key for r in requests if r.partition_key}
        requests += fallback_requests(instance, shards, pending - launched, planner, active_keys | launched,
                                      "no plan" if plan is None else "last plan failed")
    return requests, reasons


def _candidate(key: str, shard: dict) -> Candidate:
    return Candidate(key, shard["tier"], shard.get("account", DEFAULT_ACCOUNT))


def _render_request(key: str, shard: dict, start: str, plan_id: str, est_gpu_seconds: float) -> RunRequest:
    return render_request(key, shard["tier"], shard["batch_id"], shard.get("account", DEFAULT_ACCOUNT),
                          run_key=f"{key}@{start}", **{
                              # run monitoring ends a hung run (and frees its gpu slot) past this
                              MAX_RUNTIME_TAG: str(render_max_runtime_s(est_gpu_seconds)),
                              "sora_assets/plan_id": plan_id, "sora_assets/planned_start": start})


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
