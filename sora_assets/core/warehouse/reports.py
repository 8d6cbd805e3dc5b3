"""Report SQL over the warehouse tables: one definition each, used for the DuckDB views users query and
for `sora-assets report` (which adds --batch / --since filters before aggregating)."""

from __future__ import annotations

from dataclasses import dataclass

_COST_COLUMNS = """
    count(*) AS clips,
    count(*) FILTER (WHERE NOT cache_hit) AS rendered,
    count(*) FILTER (WHERE cache_hit) AS cache_hits,
    round(sum(gpu_seconds), 3) AS gpu_seconds,
    round(sum(cost_usd), 6) AS cost_usd,
    round(sum(coalesce(storage_usd, 0)), 8) AS storage_usd,
    round(sum(api_equivalent_usd), 2) AS api_equivalent_usd,
    round(sum(api_equivalent_usd) - sum(cost_usd), 6) AS saved_vs_api_usd"""


@dataclass(frozen=True)
class Report:
    view: str
    sql: str  # with {where}: a WHERE clause (or nothing) applied to the base table before aggregating


REPORTS: dict[str, Report] = {
    # per model family too (rows from before families existed have none: they are Wan's)
    "cost_by_batch": Report("v_cost_by_batch", f"""
        SELECT batch_id, {_COST_COLUMNS}, coalesce(model_family, 'wan') AS model_family FROM cost_ledger {{where}}
        GROUP BY batch_id, coalesce(model_family, 'wan') ORDER BY batch_id, model_family"""),
    "cost_by_tier": Report("v_cost_by_tier", f"""
        SELECT tier, {_COST_COLUMNS} FROM cost_ledger {{where}} GROUP BY tier ORDER BY tier"""),
    "cost_by_window": Report("v_cost_by_window", f"""
        SELECT window_start, max(price_per_gpu_hour) AS price_per_gpu_hour, {_COST_COLUMNS}
        FROM cost_ledger {{where}} GROUP BY window_start ORDER BY window_start"""),
    "cache_savings": Report("v_cache_savings", """
        WITH renders AS (
            SELECT cache_key, arg_min(gpu_seconds, recorded_at) AS gpu_seconds,
                   arg_min(cost_usd, recorded_at) AS cost_usd
            FROM cost_ledger WHERE NOT cache_hit GROUP BY cache_key)
        SELECT l.batch_id, count(*) AS cache_hits, round(sum(coalesce(r.gpu_seconds, 0)), 3) AS gpu_seconds_saved,
               round(sum(coalesce(r.cost_usd, 0)), 6) AS usd_saved
        FROM (SELECT * FROM cost_ledger {where}) AS l LEFT JOIN renders AS r USING (cache_key)
        WHERE l.cache_hit GROUP BY l.batch_id ORDER BY l.batch_id"""),
    "quality_by_model": Report("v_quality_by_model", """
        SELECT model, count(*) AS clips, round(avg(flicker), 5) AS flicker, round(avg(motion), 4) AS motion,
               round(avg(dynamic_degree), 4) AS dynamic_degree, round(avg(warp_error), 5) AS warp_error,
               round(avg(sharpness), 2) AS sharpness, round(avg(exposure), 4) AS exposure,
               round(avg(black_ratio), 4) AS black_ratio, round(avg(frozen_ratio), 4) AS frozen_ratio,
               round(avg(colour_drift), 3) AS colour_drift, round(avg(clip_score), 2) AS clip_score,
               coalesce(model_family, 'wan') AS model_family
        FROM quality_metrics {where} GROUP BY model, coalesce(model_family, 'wan') ORDER BY model_family, model"""),
    "safety_by_category": Report("v_safety_by_category", """
        SELECT stage, coalesce(label, check_name) AS category, action, count(*) AS events,
               count(DISTINCT coalesce(clip_id, partition_key || ':' || row)) AS items
        FROM safety_events {where} GROUP BY ALL ORDER BY stage, category, action"""),
    # the estimator's error: each shard's latest planned estimate against what the ledger recorded
    "plan_accuracy": Report("v_plan_accuracy", """
        WITH planned AS (
            SELECT partition_key, any_value(batch_id) AS batch_id, max(recorded_at) AS planned_at,
                   arg_max(est_gpu_seconds, recorded_at) AS est_gpu_seconds,
                   arg_max(est_cost_usd, recorded_at) AS est_cost_usd
            FROM render_plan {where} GROUP BY partition_key),
        actual AS (
            SELECT partition_key, sum(gpu_seconds) AS gpu_seconds, sum(cost_usd) AS cost_usd
            FROM cost_ledger WHERE NOT cache_hit GROUP BY partition_key)
        SELECT p.partition_key, p.batch_id, round(p.est_gpu_seconds, 3) AS est_gpu_seconds,
               round(a.gpu_seconds, 3) AS actual_gpu_seconds, round(p.est_cost_usd, 6) AS est_cost_usd,
               round(a.cost_usd, 6) AS actual_cost_usd,
               round(100 * (a.gpu_seconds - p.est_gpu_seconds) / nullif(p.est_gpu_seconds, 0), 1) AS error_pct
        FROM planned AS p JOIN actual AS a USING (partition_key) ORDER BY p.partition_key"""),
}

# `sora-assets report <kind>` prints these
KINDS: dict[str, list[str]] = {
    "cost": ["cost_by_batch", "cost_by_tier", "cost_by_window", "cache_savings", "plan_accuracy"],
    "quality": ["quality_by_model"],
    "safety": ["safety_by_category"],
}


def report_sql(name: str, batch: str | None = None, since: str | None = None) -> tuple[str, list[object]]:
    """The report's SQL with filters on the base table, and its parameters."""
    clauses, params = [], []
    if batch:
        clauses.append("batch_id = ?")
        params.append(batch)
    if since:
        clauses.append("recorded_at >= CAST(? AS TIMESTAMPTZ)")
        params.append(since)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return REPORTS[name].sql.format(where=where), params


def view_statements() -> list[str]:
    return [f"CREATE OR REPLACE VIEW {r.view} AS {r.sql.format(where='')}" for r in REPORTS.values()]
