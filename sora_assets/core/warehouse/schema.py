"""Warehouse table schemas: one Parquet file per (table, partition, writer)."""

from __future__ import annotations

import pyarrow as pa

TABLES: dict[str, pa.Schema] = {
    "rejections": pa.schema([
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("row", pa.int64()),
        ("source_id", pa.string()), ("stage", pa.string()), ("reason", pa.string()),
        ("category", pa.string()), ("prompt_sha256", pa.string()), ("prompt_excerpt", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "clips": pa.schema([
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("clip_id", pa.string()),
        ("row", pa.int64()), ("source_id", pa.string()), ("tier", pa.string()), ("status", pa.string()),
        ("cache_key", pa.string()), ("sha256", pa.string()), ("store_path", pa.string()),
        ("model", pa.string()), ("model_revision", pa.string()), ("seed", pa.int64()),
        ("seed_derived", pa.bool_()), ("steps", pa.int64()), ("width", pa.int64()), ("height", pa.int64()),
        ("num_frames", pa.int64()), ("fps", pa.int64()), ("duration_s", pa.float64()),
        ("prompt_sha256", pa.string()), ("c2pa_state", pa.string()), ("scan_verdict", pa.string()),
        ("warnings", pa.string()), ("gpu_seconds", pa.float64()), ("resumed_from_step", pa.int64()),
        ("step_seconds_mean", pa.float64()), ("frames_sha256", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")), ("preset", pa.string()),
        ("model_family", pa.string()),  # core/render/model_families.py (null in rows from before families: wan)
    ]),
    "cost_ledger": pa.schema([
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("clip_id", pa.string()),
        ("cache_key", pa.string()), ("tier", pa.string()), ("model", pa.string()), ("steps", pa.int64()),
        ("gpu_seconds", pa.float64()),
        ("window_start", pa.timestamp("us", tz="UTC")), ("price_per_gpu_hour", pa.float64()),
        ("overhead", pa.float64()), ("cost_usd", pa.float64()), ("storage_usd", pa.float64()),
        ("api_equivalent_usd", pa.float64()),
        ("cache_hit", pa.bool_()), ("device", pa.string()), ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("preset", pa.string()),  # acceleration preset the clip was rendered with (exact: none)
        ("model_family", pa.string()),
    ]),
    "dead_letters": pa.schema([
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("clip_id", pa.string()),
        ("row", pa.int64()), ("cache_key", pa.string()), ("tier", pa.string()), ("reason", pa.string()),
        ("step", pa.int64()), ("gpu_seconds", pa.float64()), ("retryable", pa.bool_()),
        ("spec_json", pa.string()), ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "quarantined_clips": pa.schema([  # blocked by the frame scan: a terminal outcome, keyed by cache key
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("clip_id", pa.string()),
        ("cache_key", pa.string()), ("reasons", pa.string()), ("policy_version", pa.string()),
        ("frames_sha256", pa.string()), ("gpu_seconds", pa.float64()), ("steps_run", pa.int64()),
        ("device", pa.string()), ("render_started_at", pa.string()), ("quarantine_path", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "quality_metrics": pa.schema([
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("clip_id", pa.string()),
        ("cache_key", pa.string()), ("model", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
        ("num_frames", pa.int64()), ("flicker", pa.float64()), ("motion", pa.float64()),
        ("dynamic_degree", pa.float64()), ("warp_error", pa.float64()), ("sharpness", pa.float64()),
        ("exposure", pa.float64()), ("clipped_ratio", pa.float64()), ("black_ratio", pa.float64()),
        ("frozen_ratio", pa.float64()), ("colour_drift", pa.float64()), ("clip_score", pa.float64()),
        ("recorded_at", pa.timestamp("us", tz="UTC")), ("model_family", pa.string()),
    ]),
    "eval_results": pa.schema([
        ("eval_id", pa.string()), ("check_name", pa.string()), ("passed", pa.bool_()), ("value", pa.float64()),
        ("expected", pa.float64()), ("detail", pa.string()), ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "render_plan": pa.schema([
        ("plan_id", pa.string()), ("partition_key", pa.string()), ("batch_id", pa.string()), ("tier", pa.string()),
        ("clips", pa.int64()), ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")), ("planned_start", pa.timestamp("us", tz="UTC")),
        ("planned_end", pa.timestamp("us", tz="UTC")), ("gpu_slot", pa.int64()), ("est_gpu_seconds", pa.float64()),
        ("est_cost_usd", pa.float64()), ("deadline", pa.timestamp("us", tz="UTC")),
        ("deadline_slack_s", pa.float64()), ("late", pa.bool_()), ("solver", pa.string()), ("status", pa.string()),
        ("estimate_source", pa.string()), ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("account", pa.string()), ("held_by_cap", pa.bool_()),
    ]),
    "safety_events": pa.schema([
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("clip_id", pa.string()),
        ("row", pa.int64()), ("stage", pa.string()), ("check_name", pa.string()), ("frame_index", pa.int64()),
        ("label", pa.string()), ("score", pa.float64()), ("action", pa.string()),
        ("policy_version", pa.string()), ("detail", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "edit_decisions": pa.schema([  # the edit decision list of each shot group, as validated
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("shot_group", pa.string()), ("shot", pa.int64()),
        ("shot_id", pa.string()), ("clip_id", pa.string()), ("row", pa.int64()), ("anchor", pa.bool_()),
        ("camera_action", pa.string()), ("reference", pa.string()), ("seed", pa.int64()),
        ("duration_s", pa.float64()), ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "sequences": pa.schema([  # one row per shot group: stitched (or cached) sequence, or why it is incomplete
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("shot_group", pa.string()),
        ("status", pa.string()), ("shots", pa.int64()), ("shot_clip_ids", pa.string()), ("frames", pa.int64()),
        ("fps", pa.int64()), ("crossfade_frames", pa.int64()), ("duration_s", pa.float64()),
        ("sha256", pa.string()), ("store_path", pa.string()), ("c2pa_state", pa.string()),
        ("ingredients", pa.int64()), ("missing", pa.string()), ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "render_failures": pa.schema([  # one row per render attempt that raised: which GPU worker, what error
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("run_id", pa.string()),
        ("retry_number", pa.int64()), ("worker", pa.string()), ("device", pa.string()), ("reason", pa.string()),
        ("retryable", pa.bool_()), ("clips", pa.int64()), ("error", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
    "render_attempts": pa.schema([  # one row per render attempt of a clip: its spend (core/render/spend.py)
        ("partition_key", pa.string()), ("batch_id", pa.string()), ("clip_id", pa.string()),
        ("cache_key", pa.string()), ("attempt_id", pa.string()), ("run_id", pa.string()), ("step_key", pa.string()),
        ("resumed_from_step", pa.int64()), ("steps_done", pa.int64()), ("gpu_seconds", pa.float64()),
        ("finished", pa.bool_()), ("updated_at", pa.timestamp("us", tz="UTC")),
    ]),
    "slo_snapshots": pa.schema([  # long format: one row per (snapshot, tier, metric, dimension), for charts
        ("snapshot_id", pa.string()), ("computed_at", pa.timestamp("us", tz="UTC")), ("tier", pa.string()),
        ("metric", pa.string()), ("dimension", pa.string()), ("value", pa.float64()), ("samples", pa.int64()),
    ]),
    "batch_completions": pa.schema([  # one partition per finished batch (its id): the completion notification
        ("batch_id", pa.string()), ("rows", pa.int64()), ("shards", pa.int64()), ("shards_published", pa.int64()),
        ("shards_failed", pa.int64()), ("clips_done", pa.int64()), ("rendered", pa.int64()),
        ("cache_hits", pa.int64()), ("blocked", pa.int64()), ("dead_letters", pa.int64()),
        ("gpu_hours", pa.float64()), ("cost_usd", pa.float64()), ("api_equivalent_usd", pa.float64()),
        ("savings_usd", pa.float64()), ("failures", pa.string()), ("webhook_status", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]),
    "alerts": pa.schema([  # one partition per alert (its id): rewritten firing -> resolved, never duplicated
        ("alert_id", pa.string()), ("alarm", pa.string()), ("signal", pa.string()), ("subject", pa.string()),
        ("severity", pa.string()), ("status", pa.string()), ("value", pa.float64()), ("threshold", pa.float64()),
        ("samples", pa.int64()), ("message", pa.string()), ("runbook", pa.string()),
        ("fired_at", pa.timestamp("us", tz="UTC")), ("resolved_at", pa.timestamp("us", tz="UTC")),
        ("webhook_status", pa.string()), ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]),
}
