"""`sora-assets recover`: after a crash or a power loss, end the runs that have no process, free the pool
slots they claimed, and backfill their shards (the Dagster side of `core.recovery`).

Safe to run at any time: a run whose worker is alive on this machine is left alone, and a slot is only
freed for a run that is over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from sora_assets.core.ops.recovery import RunProcess, dead_runs, runs_holding_slots_after_they_ended

REASON = "sora-assets recover: the run's process is gone (crash or power loss); its shard is backfilled"


@dataclass
class Recovery:
    failed: list[RunProcess] = field(default_factory=list)
    freed: dict[str, int] = field(default_factory=dict)  # run id -> slots freed


def run_processes(instance: DagsterInstance) -> list[RunProcess]:
    """Runs the storage holds as in progress, each with its worker's pid (from its RUN_START event)."""
    statuses = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    found = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=statuses)):
        run = record.dagster_run
        starts = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)
        pid = starts[-1].dagster_event.pid if starts and starts[-1].dagster_event else None
        started = record.start_time or record.create_timestamp.timestamp()
        found.append(RunProcess(run.run_id, run.status.value, pid, started, run.tags.get("dagster/partition")))
    return found


def recover(instance: DagsterInstance, now: float | None = None) -> Recovery:
    """Mark dead runs failed, then free every pool slot still claimed by a run that is over."""
    result = Recovery()
    for dead in dead_runs(run_processes(instance), time.time() if now is None else now):
        run = instance.get_run_by_id(dead.run_id)
        if run is not None and run.status.value == dead.status:  # not ended by someone else meanwhile
            instance.report_run_failed(run, REASON)
            result.failed.append(dead)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        claimed = storage.get_concurrency_run_ids()
        finished = [r.dagster_run.run_id for r in instance.get_run_records(
            filters=RunsFilter(run_ids=list(claimed), statuses=list(FINISHED_STATUSES)))] if claimed else []
        stale = runs_holding_slots_after_they_ended(claimed, finished)
        held: dict[str, int] = {}
        for pool in storage.get_concurrency_keys() if stale else []:
            for slot in storage.get_concurrency_info(pool).claimed_slots:
                held[slot.run_id] = held.get(slot.run_id, 0) + 1
        for run_id in sorted(stale):
            storage.free_concurrency_slots_for_run(run_id)  # returns nothing: counted from the claims above
            result.freed[run_id] = held.get(run_id, 0)
    return result
