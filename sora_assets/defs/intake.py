"""Intake: the inbox sensor registers batch files as shard partitions; prompt_shards loads a shard."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    asset,
    sensor,
)

from sora_assets.core.intake.batch_files import DEFAULT_ACCOUNT, batch_id_of_key, rows_from_shard_file
from sora_assets.core.intake.inbox import inbox_candidates, ingest_file, quarantine_file, shard_rows_path
from sora_assets.core.planning.fair_share import Candidate, select_within_cap
from sora_assets.defs.catalog import INTAKE, owners_of
from sora_assets.defs.partitions import SHARDS, shards_partitions
from sora_assets.resources.home import HomeResource
from sora_assets.resources.planner import PlannerResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.runs import ACTIVE, RENDER_JOB, TIER_PRIORITY, render_request, shards_with_runs
from sora_assets.services.planning import published_shards, registered_shards


@asset(partitions_def=shards_partitions, group_name=INTAKE, owners=owners_of(INTAKE), kinds={"pandas"},
       description="The raw rows of one shard, as split off the submitted batch file.")
def prompt_shards(context: AssetExecutionContext, home: HomeResource) -> pd.DataFrame:
    path = shard_rows_path(home.home, context.partition_key)
    frame = rows_from_shard_file(path.read_bytes())
    context.add_output_metadata({"rows": len(frame), "batch_id": batch_id_of_key(context.partition_key),
                                 "shard_file": str(path)})
    return frame


def fair_share_requests(context: SensorEvaluationContext, home: HomeResource, new: list[Candidate],
                        cap: int, gpus: int | None = None,
                        warehouse: ParquetWarehouse | None = None) -> list[RunRequest]:
    """Launch-now mode under the fair-share cap: shards never launched (new ones and those held on earlier
    ticks), paid first, free ones while their account has fewer than `cap` free shards in progress, and
    beyond that into GPUs no run in progress holds (work-conserving: `gpus` is the pool's size)."""

    shards = {s["key"]: s for s in registered_shards(home.home)}
    for candidate in new:
        shards.setdefault(candidate.key, {"key": candidate.key, "tier": candidate.tier, "account": candidate.account,
                                          "batch_id": batch_id_of_key(candidate.key)})
    published = published_shards(warehouse if warehouse is not None else home.home.warehouse)
    unpublished = sorted(k for k in shards if k not in published)  # only their runs are read, not every run
    launched = shards_with_runs(context.instance, list(DagsterRunStatus), unpublished) | published
    active = shards_with_runs(context.instance, ACTIVE)

    def candidate(key: str) -> Candidate:
        return Candidate(key, shards[key]["tier"], shards[key].get("account", DEFAULT_ACCOUNT))

    waiting = sorted((k for k in shards if k not in launched),
                     key=lambda k: (-TIER_PRIORITY.get(shards[k]["tier"], 0), k))  # paid first
    idle = None if gpus is None else max(0, gpus - len(active))
    launch, held = select_within_cap([candidate(k) for k in waiting], [candidate(k) for k in active if k in shards],
                                     cap, idle_gpus=idle)
    if held:
        context.log.info(f"fair share: {len(held)} free shard(s) held until their account has fewer than {cap} "
                         f"in progress ({', '.join(sorted({c.account for c in held}))})")
    return [render_request(c.key, c.tier, shards[c.key]["batch_id"], c.account) for c in launch]


def register_inbox(context: SensorEvaluationContext, home: HomeResource, launch: bool = True,
                   free_cap: int | None = None, gpus: int | None = None,
                   warehouse: ParquetWarehouse | None = None) -> SensorResult:
    """One pass over the inbox; never raises for a bad file (it is quarantined with a reason).

    With `launch` False (planned launch mode) shards are only registered: the window sensor runs them.
    With a `free_cap`, launching also respects fair share and picks up shards held on earlier ticks.
    """
    layout = home.home
    existing = set(context.instance.get_dynamic_partitions(SHARDS))
    new_keys: list[str] = []
    new: list[Candidate] = []
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
            new.append(Candidate(key, result.shard_tiers.get(key, ""),
                                 result.shard_accounts.get(key, DEFAULT_ACCOUNT)))
            if not launch or free_cap is not None:
                continue
            run_requests.append(render_request(key, result.shard_tiers.get(key, ""), result.batch_id or "",
                                               result.shard_accounts.get(key, DEFAULT_ACCOUNT)))
    if launch and free_cap is not None:
        run_requests = fair_share_requests(context, home, new, free_cap, gpus, warehouse)
    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[shards_partitions.build_add_request(new_keys)] if new_keys else [],
    )


@sensor(job_name=RENDER_JOB, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Registers batch files dropped in <home>/inbox as shard partitions and launches their runs.")
def inbox_sensor(context: SensorEvaluationContext, home: HomeResource, planner: PlannerResource,
                 warehouse: ParquetWarehouse) -> SensorResult:
    return register_inbox(context, home, launch=planner.launch_mode == "now", free_cap=planner.free_share_cap,
                          gpus=planner.gpus, warehouse=warehouse)
