"""The render run vocabulary: the shard job's name, run priorities and tags, which statuses count as in
progress, and the queries that read a set of shards' runs.

One module, importing no assets, so sensors, planning, observability, backfill and recovery share these
words without pulling in the asset graph (or each other)."""

from __future__ import annotations

from typing import Any

from dagster import DagsterInstance, DagsterRunStatus, RunRequest, RunsFilter

RENDER_JOB = "render_shard"
TIER_PRIORITY = {"paid": 10, "free": 0}  # `dagster/priority`: paid shards leave the run queue first
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
          DagsterRunStatus.STARTED]
KEYS_PER_QUERY = 500  # partition keys per tag-filtered query (SQLite caps bound parameters)


def render_tags(tier: str, batch_id: str, account: str, **extra: str) -> dict[str, str]:
    """The tags every render run carries: its queue priority, batch, tier and account (plus `extra`)."""
    return {"dagster/priority": str(TIER_PRIORITY.get(tier, 0)), "sora_assets/batch_id": batch_id,
            "sora_assets/tier": tier, "sora_assets/account": account, **extra}


def render_request(key: str, tier: str, batch_id: str, account: str, run_key: str | None = None,
                   **extra: str) -> RunRequest:
    """A request for one shard's render run (run key: the shard, or `run_key` for a planned window)."""
    return RunRequest(run_key=run_key or key, partition_key=key, job_name=RENDER_JOB,
                      tags=render_tags(tier, batch_id, account, **extra))


def run_records_for(instance: DagsterInstance, job_name: str, keys: list[str] | None,
                    statuses: list[DagsterRunStatus] | None = None) -> list[Any]:
    """Run records of `job_name` for the shards `keys` only (None: every shard), in chunks of keys."""
    if keys is None:
        return list(instance.get_run_records(filters=RunsFilter(job_name=job_name, statuses=statuses or [])))
    records = []
    for first in range(0, len(keys), KEYS_PER_QUERY):
        chunk = list(keys[first:first + KEYS_PER_QUERY])
        records += instance.get_run_records(filters=RunsFilter(job_name=job_name, statuses=statuses or [],
                                                               tags={"dagster/partition": chunk}))
    return records


def shards_with_runs(instance: DagsterInstance, statuses: list[DagsterRunStatus],
                     keys: list[str] | None = None) -> set[str]:
    """Shards that have a render run in one of `statuses`; with `keys`, only those shards' runs are read
    (a tick then costs what the live shards cost, not every run ever stored)."""
    if keys is None:
        runs = instance.get_runs(filters=RunsFilter(job_name=RENDER_JOB, statuses=statuses))
    else:
        runs = [r.dagster_run for r in run_records_for(instance, RENDER_JOB, keys, statuses)]
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}
