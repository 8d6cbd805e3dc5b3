"""Intake: the inbox sensor registers batch files as shard partitions; prompt_shards loads a shard."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    asset,
    sensor,
)

from sora_assets.core.batch import batch_id_of_key, rows_from_shard_file
from sora_assets.core.intake import inbox_candidates, ingest_file, quarantine_file, shard_rows_path
from sora_assets.defs.catalog import INTAKE, owners_of
from sora_assets.defs.partitions import SHARDS, shards_partitions
from sora_assets.resources.home import HomeResource
from sora_assets.resources.planner import PlannerResource

RENDER_JOB = "render_shard"
TIER_PRIORITY = {"paid": 10, "free": 0}


@asset(partitions_def=shards_partitions, group_name=INTAKE, owners=owners_of(INTAKE), kinds={"pandas"},
       description="The raw rows of one shard, as split off the submitted batch file.")
def prompt_shards(context: AssetExecutionContext, home: HomeResource) -> pd.DataFrame:
    path = shard_rows_path(home.home, context.partition_key)
    frame = rows_from_shard_file(path.read_bytes())
    context.add_output_metadata({"rows": len(frame), "batch_id": batch_id_of_key(context.partition_key),
                                 "shard_file": str(path)})
    return frame


def register_inbox(context: SensorEvaluationContext, home: HomeResource, launch: bool = True) -> SensorResult:
    """One pass over the inbox; never raises for a bad file (it is quarantined with a reason).

    With `launch` False (planned launch mode) shards are only registered: the window sensor runs them.
    """
    layout = home.home
    existing = set(context.instance.get_dynamic_partitions(SHARDS))
    new_keys: list[str] = []
    run_requests: list[RunRequest] = []
    for path in inbox_candidates(layout):
        try:
            result = ingest_file(layout, path, home.shard_size)
        except Exception as exc:  # a sensor must survive anything a file can do to it
            context.log.exception(f"unexpected error ingesting {path.name}")
            if path.exists():
                quarantine_file(layout, path, f"internal error while ingesting: {type(exc).__name__}: {exc}")
            continue
        if result.status == "quarantined":
            context.log.warning(f"quarantined {result.source_name}: {result.reason}")
            continue
        context.log.info(f"{result.status} {result.source_name} as {result.batch_id} "
                         f"({result.rows} rows, {len(result.shard_keys)} shards)")
        for key in result.shard_keys:
            if key in existing or key in new_keys:
                continue
            new_keys.append(key)
            if not launch:
                continue
            run_requests.append(RunRequest(
                run_key=key, partition_key=key, job_name=RENDER_JOB,
                tags={"dagster/priority": str(TIER_PRIORITY.get(result.shard_tiers.get(key, ""), 0)),
                      "sora_assets/batch_id": result.batch_id or ""}))
    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[shards_partitions.build_add_request(new_keys)] if new_keys else [],
    )


@sensor(job_name=RENDER_JOB, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Registers batch files dropped in <home>/inbox as shard partitions and launches their runs.")
def inbox_sensor(context: SensorEvaluationContext, home: HomeResource, planner: PlannerResource) -> SensorResult:
    return register_inbox(context, home, launch=planner.launch_mode == "now")
