"""Observability: the `slo_snapshots` asset (on a schedule), one alarm sensor per alarm, and the batch_completion
sensor with the `batch_progress` figures it reports per batch."""

import json

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetSelection,
    AssetSpec,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from sora_assets.core.ops.alarms import ALARMS
from sora_assets.defs.catalog import WAREHOUSE, owners_of
from sora_assets.defs.partitions import BATCHES, batches_partitions
from sora_assets.resources.home import HomeResource
from sora_assets.resources.observability import ObservabilityResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.services.observability import (
    compute_snapshot,
    notify_finished_batches,
    progress_digest,
    progress_metadata,
    run_alarm,
)

ALARM_INTERVAL_S = 120


def figures_table(rows: list[dict]) -> str:
    lines = ["| tier | metric | dimension | value | samples |", "|---|---|---|---|---|"]
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4g}"
        lines.append(f"| {r['tier']} | {r['metric']} | {r['dimension']} | {value} | {r['samples']} |")
    return "\n".join(lines)


# the warehouse group: the snapshots are warehouse rows, read by `sora-assets status` and the alarms
@asset(group_name=WAREHOUSE, owners=owners_of(WAREHOUSE), kinds={"duckdb"},
       description="SLO figures per tier (queue wait, end to end, deadline slack, NaN-abort, block and cache-hit "
                   "rates, GPU-seconds per clip) from the instance and the warehouse, as slo_snapshots rows.")
def slo_snapshots(context: AssetExecutionContext, home: HomeResource, warehouse: ParquetWarehouse,
                  observability: ObservabilityResource) -> MaterializeResult:
    snapshot = compute_snapshot(home.home, context.instance, warehouse, observability.now(),
                                observability.slo_window_hours)
    return MaterializeResult(metadata={"snapshot_id": snapshot.snapshot_id, "figures": len(snapshot.rows),
                                       "slo": MetadataValue.md(figures_table(snapshot.rows))})


slo_snapshot_job = define_asset_job("slo_snapshot_job", selection=AssetSelection.assets(slo_snapshots),
                                    description="Compute and store an SLO snapshot.")
slo_snapshot_schedule = ScheduleDefinition(name="slo_snapshot_schedule", job=slo_snapshot_job,
                                           cron_schedule="*/30 * * * *", default_status=DefaultScheduleStatus.RUNNING,
                                           description="Every 30 minutes: an SLO snapshot to chart over time.")


def alarm_sensor(alarm: str) -> SensorDefinition:
    """A sensor that evaluates one alarm each tick: fire (alerts row + webhook) or clear, never twice."""
    spec = ALARMS[alarm]

    @sensor(name=f"{alarm}_alarm", minimum_interval_seconds=ALARM_INTERVAL_S,
            default_status=DefaultSensorStatus.RUNNING,
            description=f"Alarm on {spec.signal} ({spec.severity}); runbook section #{spec.runbook}.")
    def _alarm(context: SensorEvaluationContext, home: HomeResource, warehouse: ParquetWarehouse,
               observability: ObservabilityResource) -> SkipReason:
        outcome = run_alarm(alarm, home.home, context.instance, warehouse, observability.now(),
                            observability.thresholds, observability.webhook_url, observability.runbook_url,
                            observability.webhook_timeout_s)
        for alert in outcome.fired:
            context.log.warning(f"FIRING {alert['signal']} ({alert['severity']}): {alert['message']} "
                                f"[value {alert['value']}, threshold {alert['threshold']}]")
        for alert in outcome.resolved:
            context.log.info(f"resolved {alert['signal']}: {alert['message']}")
        summary = "; ".join(f"{s.key}={s.value if s.value is None else round(s.value, 4)}"
                            f"{' BREACHED' if s.breached else ''}" for s in outcome.signals)
        return SkipReason(f"{len(outcome.fired)} fired, {len(outcome.resolved)} resolved; {summary or 'no data'}")

    return _alarm


alarm_sensors = [alarm_sensor(name) for name in ALARMS]


BATCH_PROGRESS = "batch_progress"
batch_progress = AssetSpec(
    BATCH_PROGRESS, group_name=WAREHOUSE, owners=owners_of(WAREHOUSE), partitions_def=batches_partitions,
    kinds={"duckdb"},  # the figures are warehouse queries, like slo_snapshots
    description="One partition per batch: clips done / total, rendered, cache hits, blocked, dead letters, GPU-hours "
                "and dollars so far vs plan, the plan's ETA and the shards at risk (what `sora-assets status --batch` "
                "prints), observed by the batch_completion sensor whenever they change.")


@sensor(name="batch_completion", minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="When a batch finishes (every shard published or terminally failed): one batch_completions "
                    "row and one JSON POST to the alert webhook, with counts, cost, savings and failures.")
def batch_completion_sensor(context: SensorEvaluationContext, home: HomeResource, warehouse: ParquetWarehouse,
                            observability: ObservabilityResource) -> SensorResult:
    progress: list[dict] = []
    sent = notify_finished_batches(home.home, context.instance, warehouse, observability.now(),
                                   observability.webhook_url, observability.webhook_timeout_s, progress)
    for figures in sent:
        context.log.info(f"batch {figures['batch_id']} finished: {figures['clips_done']} clips, "
                         f"{figures['shards_failed']} failed shard(s), ${figures['cost_usd']:.4f} "
                         f"({figures['webhook_status']})")
    # the same figures in the UI: one batch_progress observation per batch (partition) whenever they change;
    # the cursor keeps what each unfinished batch last showed
    shown = json.loads(context.cursor) if context.cursor else {}
    events, kept = [], {}
    for figures in progress:
        metadata = progress_metadata(figures)
        digest = progress_digest(metadata)
        if not figures["finished"]:
            kept[figures["batch_id"]] = digest
        if shown.get(figures["batch_id"]) != digest:
            events.append(AssetObservation(BATCH_PROGRESS, partition=figures["batch_id"], metadata=metadata))
    if events:  # the partitions first: observations are stored as the tick's result is applied
        known = set(context.instance.get_dynamic_partitions(BATCHES))
        missing = sorted({e.partition for e in events} - known)
        if missing:
            context.instance.add_dynamic_partitions(BATCHES, missing)
    return SensorResult(asset_events=events, cursor=json.dumps(kept, sort_keys=True),
                        skip_reason=None if events else f"{len(sent)} batch(es) finished this tick")
