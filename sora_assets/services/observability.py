"""Gathering the SLO and alarm inputs from the home, the Dagster instance and the warehouse.

Shared by the `slo_snapshots` asset, the alarm sensors and `sora-assets status`; the arithmetic
itself lives in `core/ops/slo.py` and `core/ops/alarms.py`. Where each figure comes from:

- registered: the batch record's `submitted_at` (the inbox sensor registers the shards then);
- render started / finished: the start and end time of the shard's first render run in the instance;
- published: the latest `clips.recorded_at` of the shard;
- deadline, planned start: the shard's latest `render_plan` row (or the latest plan document).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from dagster import DagsterInstance, DagsterRunStatus

from sora_assets.core.ops import alarms as core_alarms
from sora_assets.core.ops.slo import NAN_REASON, SCAN_RECORD, clip_rate_figures, shard_timing_figures, snapshot_rows
from sora_assets.core.storage.home import Home
from sora_assets.runs import ACTIVE, RENDER_JOB, run_records_for
from sora_assets.services.planning import latest_plan, published_shards, registered_shards

ALERT_WRITER = "alarms"
SNAPSHOT_WRITER = "slo"


def render_runs(instance: DagsterInstance | None, keys: list[str] | None = None) -> pd.DataFrame:
    """Per shard: first render start, its end, and the latest run's status.

    With `keys`, only those shards' runs are read (one query filtered by partition tag): ticks then cost
    what the live shards cost, not every run ever stored (1.2 s per tick at 10k runs, linear)."""
    columns = ["partition_key", "started_at", "ended_at", "run_status", "active"]
    if instance is None or keys == []:
        return pd.DataFrame(columns=columns)
    rows = []
    for record in run_records_for(instance, RENDER_JOB, keys):
        run = record.dagster_run
        key = run.tags.get("dagster/partition")
        if not key:
            continue
        rows.append({"partition_key": key, "created": record.create_timestamp,
                     "started_at": _stamp(record.start_time), "ended_at": _stamp(record.end_time),
                     "status": run.status})
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows).sort_values("created")
    active = set(ACTIVE)
    grouped = frame.groupby("partition_key")
    return pd.DataFrame({
        "started_at": grouped["started_at"].min(), "ended_at": grouped["ended_at"].max(),
        "run_status": grouped["status"].last().map(lambda s: s.value),
        "active": grouped["status"].apply(lambda s: any(x in active for x in s)),
    }).reset_index()


def _stamp(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def shard_frame(home: Home, instance: DagsterInstance | None, warehouse: Any,
                keep: Any = None) -> pd.DataFrame:
    """One row per registered shard: tier, account, registered/started/published times, plan and deadline.

    `keep(shard, published)` (a registered-shard dict, whether it is published) selects the shards wanted,
    before any run is read: only their runs are read from the instance."""
    registered = registered_shards(home)
    if keep is not None:
        done = published_shards(warehouse)
        registered = [s for s in registered if keep(s, s["key"] in done)]
    shards = pd.DataFrame(registered, columns=["key", "tier", "batch_id", "submitted_at", "account"])
    shards = shards.rename(columns={"key": "partition_key", "submitted_at": "registered_at"})
    published = warehouse.query("SELECT partition_key, max(recorded_at) AS published_at FROM clips GROUP BY ALL")
    planned = warehouse.query("""
        SELECT partition_key, arg_max(deadline, recorded_at) AS deadline,
               arg_max(planned_start, recorded_at) AS planned_start,
               arg_max(est_gpu_seconds, recorded_at) AS est_gpu_seconds
        FROM render_plan GROUP BY partition_key""")
    keys = None if keep is None else list(shards["partition_key"])
    frame = shards.merge(render_runs(instance, keys), on="partition_key", how="left")
    frame = frame.merge(published, on="partition_key", how="left").merge(planned, on="partition_key", how="left")
    for column in ("registered_at", "started_at", "ended_at", "published_at", "deadline", "planned_start"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


@dataclass
class Snapshot:
    snapshot_id: str
    computed_at: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)


def compute_snapshot(home: Home, instance: DagsterInstance | None, warehouse: Any, now: datetime,
                     window_hours: float = 24.0) -> Snapshot:
    """SLO figures over the last `window_hours` (shards registered, clips recorded in it), written to the
    warehouse as one `slo_snapshots` partition per snapshot."""
    since = now - timedelta(hours=window_hours)
    shards = shard_frame(home, instance, warehouse, keep=lambda s, _published: since <= s["submitted_at"] <= now)
    shards = shards[(shards["registered_at"] >= since) & (shards["registered_at"] <= now)]
    params = [since, now]
    window = "WHERE recorded_at >= ? AND recorded_at <= ?"
    clips = warehouse.query(f"SELECT * FROM clips {window}", params)
    dead = warehouse.query(f"SELECT * FROM dead_letters {window}", params)
    events = warehouse.query(f"SELECT * FROM safety_events {window} AND stage = 'frame'", params)
    ledger = warehouse.query(f"SELECT * FROM cost_ledger {window}", params)
    figures = shard_timing_figures(shards) + clip_rate_figures(clips, dead, events, ledger)
    snapshot_id = f"slo-{now.astimezone(UTC):%Y%m%dt%H%M%S}"
    snapshot = Snapshot(snapshot_id, now, snapshot_rows(snapshot_id, now, figures))
    warehouse.write("slo_snapshots", snapshot_id, SNAPSHOT_WRITER, snapshot.rows)
    return snapshot


def latest_snapshot(warehouse: Any) -> pd.DataFrame:
    return warehouse.query("""SELECT * FROM slo_snapshots
                              WHERE snapshot_id = (SELECT arg_max(snapshot_id, computed_at) FROM slo_snapshots)
                              ORDER BY tier, metric, dimension""")


def open_alerts(warehouse: Any) -> list[dict[str, Any]]:
    frame = warehouse.query("SELECT * FROM alerts WHERE status = ? ORDER BY fired_at", [core_alarms.FIRING])
    return [{k: (None if v is pd.NaT else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


# --- signals -------------------------------------------------------------------------------------------------------

def nan_signals(warehouse: Any, now: datetime, t: core_alarms.Thresholds) -> list[core_alarms.Signal]:
    since = now - timedelta(seconds=t.nan_window_s)
    counts = warehouse.query("""
        WITH active AS (
            SELECT partition_key, clip_id FROM clips WHERE recorded_at > ? AND recorded_at <= ?
            UNION SELECT partition_key, clip_id FROM dead_letters WHERE recorded_at > ? AND recorded_at <= ?)
        SELECT (SELECT count(*) FROM active) AS active,
               (SELECT count(DISTINCT partition_key || '/' || clip_id) FROM dead_letters
                WHERE reason = ? AND recorded_at > ? AND recorded_at <= ?) AS nan""",
                             [since, now, since, now, NAN_REASON, since, now])
    return [core_alarms.nan_rate_signal(int(counts.active[0]), int(counts.nan[0]), t)]


def paid_queue_waits(shards: pd.DataFrame, now: datetime, window_s: float) -> list[float]:
    """Paid shards' waits from when they could run (registered, or their planned start if later) until their
    render started; shards still waiting count up to now. Started shards count if they started in the window."""
    paid = shards[shards["tier"] == "paid"]
    ready = paid[["registered_at", "planned_start"]].max(axis=1)
    waits = []
    since = now - timedelta(seconds=window_s)
    for (_, row), ready_at in zip(paid.iterrows(), ready, strict=True):
        if ready_at > now:
            continue
        if pd.notna(row["started_at"]):
            if since <= row["started_at"] <= now:
                waits.append((row["started_at"] - ready_at).total_seconds())
        elif pd.isna(row["published_at"]) and row.get("run_status") not in ("FAILURE", "CANCELED"):
            waits.append((now - ready_at).total_seconds())
    return waits


def queue_signals(home: Home, instance: DagsterInstance | None, warehouse: Any, now: datetime,
                  t: core_alarms.Thresholds) -> list[core_alarms.Signal]:
    # the paid shards a wait can come from: still unpublished, or registered recently enough to have started
    # in the window (a shard waits hours, not days, before its run starts)
    recent = now - timedelta(seconds=t.queue_window_s) - timedelta(days=2)

    def keep(shard: dict[str, Any], published: bool) -> bool:
        return shard["tier"] == "paid" and (not published or shard["submitted_at"] >= recent)

    return [core_alarms.queue_wait_signal(paid_queue_waits(shard_frame(home, instance, warehouse, keep), now,
                                                           t.queue_window_s), t)]


def projected_slack(home: Home, instance: DagsterInstance | None, warehouse: Any, now: datetime) -> dict[str, float]:
    """Deadline minus projected end for each shard of the latest plan not yet published: a shard running ends
    its estimate after it started; one not started ends its estimate after max(planned start, now)."""
    plan = latest_plan(home)
    if plan is None:
        return {}
    done = published_shards(warehouse)
    runs = render_runs(instance, [a["shard"] for a in plan["assignments"] if a["shard"] not in done])
    runs = runs.set_index("partition_key")
    slack = {}
    for a in plan["assignments"]:
        if a["shard"] in done:
            continue
        estimate = timedelta(seconds=a["est_gpu_seconds"])
        started = runs["started_at"].get(a["shard"]) if a["shard"] in runs.index else None
        if started is not None and pd.notna(started):
            end = started + estimate
        else:
            end = max(datetime.fromisoformat(a["start"]), now) + estimate
        slack[a["shard"]] = (datetime.fromisoformat(a["deadline"]) - end).total_seconds()
    return slack


def scanned_clips(warehouse: Any, start: datetime, end: datetime) -> int:
    return int(warehouse.query("""SELECT count(DISTINCT partition_key || '/' || clip_id) AS n FROM safety_events
                                  WHERE check_name = ? AND recorded_at >= ? AND recorded_at < ?""",
                               [SCAN_RECORD, start, end]).n[0])


def block_counts(warehouse: Any, start: datetime, end: datetime) -> dict[str, tuple[int, int]]:
    """Per category: (clips blocked by that check, clips scanned) among frame-scan rows in [start, end)."""
    frame = warehouse.query("""
        SELECT check_name AS category, count(DISTINCT partition_key || '/' || clip_id) AS blocked
        FROM safety_events WHERE stage = 'frame' AND action = 'block' AND check_name <> ?
          AND recorded_at >= ? AND recorded_at < ? GROUP BY check_name""", [SCAN_RECORD, start, end])
    scanned = scanned_clips(warehouse, start, end)
    return {r["category"]: (int(r["blocked"]), scanned) for r in frame.to_dict(orient="records")}


def block_signals(warehouse: Any, now: datetime, t: core_alarms.Thresholds,
                  categories: list[str]) -> list[core_alarms.Signal]:
    """Recent window against the trailing baseline before it; `categories` (those with open alerts) are always
    evaluated so an alert can clear when its category stops blocking."""
    end = now + timedelta(microseconds=1)  # include rows recorded at `now`
    split = now - timedelta(seconds=t.block_recent_s)
    recent = block_counts(warehouse, split, end)
    baseline = block_counts(warehouse, split - timedelta(seconds=t.block_baseline_s), split)
    scanned = scanned_clips(warehouse, split, end)
    for category in categories:
        recent.setdefault(category, (0, scanned))
    return core_alarms.block_rate_signals(recent, baseline, t)


def worker_signals(warehouse: Any, now: datetime, t: core_alarms.Thresholds,
                   workers: list[str]) -> list[core_alarms.Signal]:
    frame = warehouse.query("SELECT worker, count(*) AS n FROM render_failures WHERE recorded_at > ? "
                            "AND recorded_at <= ? GROUP BY worker",
                            [now - timedelta(seconds=t.worker_window_s), now])
    counts = {w: 0 for w in workers} | {r["worker"]: int(r["n"]) for r in frame.to_dict(orient="records")}
    return core_alarms.worker_failure_signals(counts, t)


def evaluate_signals(alarm: str, home: Home, instance: DagsterInstance | None, warehouse: Any, now: datetime,
                     t: core_alarms.Thresholds, opened: list[dict[str, Any]]) -> list[core_alarms.Signal]:
    subjects = [a["subject"] for a in opened if a["alarm"] == alarm and a["subject"]]
    if alarm == "nan_abort_rate":
        return nan_signals(warehouse, now, t)
    if alarm == "paid_queue_wait":
        return queue_signals(home, instance, warehouse, now, t)
    if alarm == "negative_slack":
        return [core_alarms.slack_signal(projected_slack(home, instance, warehouse, now), t)]
    if alarm == "block_rate_jump":
        return block_signals(warehouse, now, t, subjects)
    if alarm == "worker_failures":
        return worker_signals(warehouse, now, t, subjects)
    raise KeyError(f"unknown alarm {alarm!r}")


# --- firing ---------------------------------------------------------------------------------------------------------

def post_webhook(url: str, payload: dict[str, Any], timeout_s: float = 5.0) -> str:
    """POST the alert as JSON; returns 'sent <status>' or the error (an alarm never fails on its webhook)."""
    request = urllib.request.Request(url, data=json.dumps(payload, default=str).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return f"sent {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"failed: {exc}"[:200]


@dataclass
class AlarmOutcome:
    alarm: str
    signals: list[core_alarms.Signal]
    fired: list[dict[str, Any]]
    resolved: list[dict[str, Any]]


def run_alarm(alarm: str, home: Home, instance: DagsterInstance | None, warehouse: Any, now: datetime,
              thresholds: core_alarms.Thresholds, webhook_url: str = "", runbook_url: str = "docs/RUNBOOK.md",
              webhook_timeout_s: float = 5.0) -> AlarmOutcome:
    """One evaluation: signals, transitions, `alerts` rows (one partition per alert id), webhook POSTs."""
    opened = [a for a in open_alerts(warehouse) if a["alarm"] == alarm]
    signals = evaluate_signals(alarm, home, instance, warehouse, now, thresholds, opened)
    fired, resolved = core_alarms.transitions(alarm, signals, opened, now)
    for alert in fired + resolved:
        if webhook_url:
            alert["webhook_status"] = post_webhook(webhook_url, core_alarms.webhook_payload(alert, runbook_url),
                                                   webhook_timeout_s)
        warehouse.write("alerts", alert["alert_id"], ALERT_WRITER, [alert])
    return AlarmOutcome(alarm, signals, fired, resolved)


def plan_progress(home: Home, instance: DagsterInstance | None, warehouse: Any, now: datetime) -> dict[str, Any]:
    """Tonight's plan: shards planned, launched (a render run exists), published, and projected late."""
    plan = latest_plan(home)
    if plan is None:
        return {"plan_id": None, "planned": 0, "launched": 0, "published": 0, "late": 0, "held_by_cap": 0}
    keys = {a["shard"] for a in plan["assignments"]}
    runs = set(render_runs(instance, sorted(keys))["partition_key"])
    done = published_shards(warehouse)
    slack = projected_slack(home, instance, warehouse, now)
    return {"plan_id": plan["plan_id"], "planned": len(keys), "launched": len(keys & (runs | done)),
            "published": len(keys & done), "late": sum(1 for s in slack.values() if s < 0),
            "held_by_cap": sum(1 for a in plan["assignments"] if a.get("held_by_cap"))}


# --- batches: the studio's view of its night, and one notification when a batch finishes ------------------------

COMPLETION_WRITER = "batch_completion"


def shard_run_states(instance: DagsterInstance | None, keys: list[str]) -> tuple[dict[str, str], set[str]]:
    """(failed shard -> reason, active shards) from the latest render run of each of `keys` only: one query
    filtered by partition tag, never every run ever stored."""
    if instance is None or not keys:
        return {}, set()
    latest: dict[str, Any] = {}
    active: set[str] = set()
    records = run_records_for(instance, RENDER_JOB, keys)
    for record in sorted(records, key=lambda r: r.create_timestamp):
        key = record.dagster_run.tags.get("dagster/partition")
        latest[key] = record.dagster_run
        if record.dagster_run.status in ACTIVE:
            active.add(key)
    failed = {k: f"render run {run.run_id[:8]} failed" for k, run in latest.items()
              if run.status == DagsterRunStatus.FAILURE}
    return failed, active


def batch_status(home: Home, instance: DagsterInstance | None, warehouse: Any, batch_id: str,
                 now: datetime) -> dict[str, Any]:
    """`core.batch_report.batch_figures` for one registered batch (ValueError if it is not registered)."""
    from sora_assets.core.intake.inbox import read_batch_record
    from sora_assets.core.warehouse.batch_report import batch_figures

    record = read_batch_record(home, batch_id)
    if record is None:
        raise ValueError(f"no registered batch {batch_id!r}")
    keys = list(record["shards"])
    published = published_shards(warehouse) & set(keys)
    failed, active = shard_run_states(instance, [k for k in keys if k not in published])
    params = [batch_id]
    clips = warehouse.query("SELECT * FROM clips WHERE batch_id = ?", params)
    ledger = warehouse.query("SELECT * FROM cost_ledger WHERE batch_id = ?", params)
    rejections = warehouse.query("SELECT * FROM rejections WHERE batch_id = ?", params)
    failures = warehouse.query("SELECT * FROM render_failures WHERE batch_id = ?", params)
    return batch_figures(batch_id, int(record["rows"]), keys, published, failed, active, clips, ledger,
                         rejections, failures, latest_plan(home), now)


def notify_finished_batches(home: Home, instance: DagsterInstance | None, warehouse: Any, now: datetime,
                            webhook_url: str = "", webhook_timeout_s: float = 5.0,
                            progress: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One `batch_completions` row (partition = batch id) and one webhook POST per batch that has finished and
    has no row yet. At least once: a crash between the POST and the row repeats the POST on the next tick.
    `progress`, when given, receives the figures of every batch looked at (each not notified before)."""
    done = set(warehouse.query("SELECT DISTINCT batch_id FROM batch_completions")["batch_id"])
    sent = []
    for record_path in sorted(home.batches.glob("*/batch.json")):
        batch_id = json.loads(record_path.read_text())["batch_id"]
        if batch_id in done:
            continue
        figures = batch_status(home, instance, warehouse, batch_id, now)
        if progress is not None:
            progress.append(figures)
        if not figures["finished"]:
            continue
        payload = {"event": "batch_finished", "finished_at": now.isoformat(), **figures}
        status = post_webhook(webhook_url, payload, webhook_timeout_s) if webhook_url else "no webhook"
        warehouse.write("batch_completions", batch_id, COMPLETION_WRITER, [{
            **{k: figures[k] for k in ("batch_id", "rows", "shards", "shards_published", "shards_failed",
                                       "clips_done", "rendered", "cache_hits", "blocked", "dead_letters",
                                       "gpu_hours", "cost_usd", "api_equivalent_usd", "savings_usd")},
            "failures": json.dumps(figures["failures"]), "webhook_status": status, "finished_at": now}])
        sent.append({**payload, "webhook_status": status})
    return sent


# a batch's figures shown in the UI, as metadata of one `batch_progress` observation per change
PROGRESS_FIELDS = ("rows", "shards", "shards_published", "shards_failed", "shards_pending", "clips_done",
                   "clips_total", "rendered", "cache_hits", "blocked", "dead_letters", "gpu_hours", "planned_gpu_hours",
                   "cost_usd", "planned_cost_usd", "savings_usd", "finished")


def progress_metadata(figures: dict[str, Any]) -> dict[str, Any]:
    """`batch_progress` metadata: the counts and money of `status --batch`, the plan's ETA and the shards at risk
    (plain values; the UI plots the numbers per partition over time)."""
    metadata: dict[str, Any] = {k: figures[k] for k in PROGRESS_FIELDS}
    metadata["done_pct"] = round(100.0 * figures["clips_done"] / figures["clips_total"], 2) \
        if figures["clips_total"] else 100.0
    metadata["eta"] = figures["eta"] or ""
    metadata["plan_id"] = figures["plan_id"] or ""
    metadata["at_risk"] = ", ".join(figures["at_risk"][:50]) + (" …" if len(figures["at_risk"]) > 50 else "")
    metadata["at_risk_count"] = len(figures["at_risk"])
    metadata["failures"] = len(figures["failures"])
    return metadata


def progress_digest(metadata: dict[str, Any]) -> str:
    """What a batch's last observation showed: a new one is reported only when this changes."""
    import hashlib

    return hashlib.sha256(json.dumps(metadata, sort_keys=True, default=str).encode()).hexdigest()[:16]
