"""Alarm evaluation: each signal against its threshold, and the fire/clear transitions given the open alerts.

An alarm is evaluated on every tick; a breached signal whose key (alarm plus subject, e.g. a category
or a worker) has no open alert fires a new one, a breached signal that is already open does nothing
(no duplicate pages), and an open alert whose signal is no longer breached is resolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sora_assets.core.ops.slo import percentile, rate

FIRING = "firing"
RESOLVED = "resolved"


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    signal: str
    severity: str  # critical pages someone; warning goes to the channel
    runbook: str  # the section anchor in docs/RUNBOOK.md


ALARMS: dict[str, AlarmSpec] = {spec.name: spec for spec in [
    AlarmSpec("nan_abort_rate", "NaN aborts / active clips", "critical", "nan-abort-rate"),
    AlarmSpec("paid_queue_wait", "paid-tier p95 queue wait (s)", "critical", "paid-queue-wait"),
    AlarmSpec("negative_slack", "least deadline slack of a planned shard (s)", "warning", "negative-slack"),
    AlarmSpec("block_rate_jump", "post-filter block rate of a category", "critical", "block-rate-jump"),
    AlarmSpec("worker_failures", "render failures on one GPU worker", "warning", "worker-failures"),
]}


@dataclass(frozen=True)
class Thresholds:
    """Documented defaults (docs/RUNBOOK.md); the AlarmsResource overrides them from config."""

    nan_rate: float = 0.005  # fire above 0.5% of active clips
    nan_window_s: float = 3600.0  # active clips: those recorded in the last hour
    paid_queue_wait_p95_s: float = 1800.0  # 30 minutes
    queue_window_s: float = 3600.0
    min_slack_s: float = 0.0  # fire when a planned shard's projected slack goes below this
    block_jump_factor: float = 3.0  # recent rate above 3x the trailing baseline ...
    block_jump_points: float = 0.02  # ... and at least 2 percentage points above it
    block_min_samples: int = 20  # scanned clips in the recent window before the alarm may fire
    block_recent_s: float = 3600.0
    block_baseline_s: float = 7 * 86400.0
    worker_failures: int = 3  # failures on one worker ...
    worker_window_s: float = 3600.0  # ... within this long


@dataclass(frozen=True)
class Signal:
    alarm: str
    value: float | None
    threshold: float
    breached: bool
    samples: int = 0
    subject: str = ""
    message: str = ""

    @property
    def key(self) -> str:
        return f"{self.alarm}:{self.subject}" if self.subject else self.alarm


def nan_rate_signal(active_clips: int, nan_aborts: int, thresholds: Thresholds) -> Signal:
    value = rate(nan_aborts, active_clips)
    breached = value is not None and value > thresholds.nan_rate
    return Signal("nan_abort_rate", value, thresholds.nan_rate, breached, active_clips,
                  message=f"{nan_aborts} NaN abort(s) in {active_clips} active clip(s)")


def queue_wait_signal(waits_s: Sequence[float], thresholds: Thresholds) -> Signal:
    """p95 of the paid shards' queue waits (those started, and those still waiting, counted up to now)."""
    p95 = percentile(waits_s, 95)
    breached = p95 is not None and p95 > thresholds.paid_queue_wait_p95_s
    return Signal("paid_queue_wait", p95, thresholds.paid_queue_wait_p95_s, breached, len(waits_s),
                  message=f"paid p95 queue wait {0 if p95 is None else p95 / 60:.1f} min over {len(waits_s)} shard(s)")


def slack_signal(projected_slack_s: dict[str, float], thresholds: Thresholds) -> Signal:
    """The least projected slack of the planned shards not yet published; names the ones below the threshold."""
    if not projected_slack_s:
        return Signal("negative_slack", None, thresholds.min_slack_s, False, 0, message="no planned shard pending")
    late = sorted(k for k, s in projected_slack_s.items() if s < thresholds.min_slack_s)
    least = min(projected_slack_s.values())
    return Signal("negative_slack", least, thresholds.min_slack_s, bool(late), len(projected_slack_s),
                  message=f"{len(late)} shard(s) projected late: {', '.join(late[:10])}" if late
                  else f"least slack {least / 3600:.2f} h")


def block_rate_signals(recent: dict[str, tuple[int, int]], baseline: dict[str, tuple[int, int]],
                       thresholds: Thresholds) -> list[Signal]:
    """Per category: (blocked, scanned) in the recent window against the trailing baseline window.

    Fires when the recent rate exceeds both factor × baseline and baseline + points, and only once the
    recent window has at least `block_min_samples` scanned clips (one block on three clips pages no one).
    """
    signals = []
    for category in sorted(set(recent) | set(baseline)):
        blocked, scanned = recent.get(category, (0, 0))
        base_blocked, base_scanned = baseline.get(category, (0, 0))
        base_rate = rate(base_blocked, base_scanned) or 0.0
        limit = max(thresholds.block_jump_factor * base_rate, base_rate + thresholds.block_jump_points)
        value = rate(blocked, scanned)
        breached = value is not None and scanned >= thresholds.block_min_samples and value > limit
        signals.append(Signal("block_rate_jump", value, limit, breached, scanned, category,
                              f"{category}: {blocked}/{scanned} blocked recently, baseline "
                              f"{base_blocked}/{base_scanned} ({base_rate:.2%})"))
    return signals


def worker_failure_signals(failures_by_worker: dict[str, int], thresholds: Thresholds) -> list[Signal]:
    return [Signal("worker_failures", float(count), float(thresholds.worker_failures),
                   count >= thresholds.worker_failures, count, worker,
                   f"{count} render failure(s) on {worker} in the last {thresholds.worker_window_s / 60:.0f} min")
            for worker, count in sorted(failures_by_worker.items())]


def alert_id(key: str, fired_at: datetime) -> str:
    """A partition-safe id: the alarm key slugged plus the firing time."""
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[:60]
    return f"{slug}-{fired_at:%Y%m%dt%H%M%S}"


def transitions(alarm: str, signals: Iterable[Signal], open_alerts: Iterable[dict[str, Any]],
                now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(alerts to fire, alerts to resolve) for one alarm, given its signals and its open alerts."""
    spec = ALARMS[alarm]
    signals = list(signals)
    breached = {s.key: s for s in signals if s.breached}
    current = {s.key: s for s in signals}
    opened = {a["signal"]: a for a in open_alerts if a["alarm"] == alarm and a["status"] == FIRING}
    fire = [{"alert_id": alert_id(key, now), "alarm": alarm, "signal": key, "subject": s.subject,
             "severity": spec.severity, "status": FIRING, "value": s.value, "threshold": s.threshold,
             "samples": s.samples, "message": s.message, "runbook": spec.runbook, "fired_at": now,
             "resolved_at": None, "recorded_at": now}
            for key, s in sorted(breached.items()) if key not in opened]
    resolve = []
    for key, alert in sorted(opened.items()):
        if key in breached:
            continue
        latest = current.get(key)
        resolve.append({**alert, "status": RESOLVED, "resolved_at": now, "recorded_at": now,
                        "value": latest.value if latest else None,
                        "message": latest.message if latest else f"{alert['message']} (signal gone)"})
    return fire, resolve


def webhook_payload(alert: dict[str, Any], runbook_base: str) -> dict[str, Any]:
    """The JSON a webhook receives: what fired, how bad, against what, and where the runbook section is."""
    def stamp(value: Any) -> str | None:
        return value.isoformat() if isinstance(value, datetime) else (None if value is None else str(value))

    return {"alert_id": alert["alert_id"], "status": alert["status"], "alarm": alert["alarm"],
            "signal": alert["signal"], "severity": alert["severity"], "value": alert["value"],
            "threshold": alert["threshold"], "samples": alert["samples"], "message": alert["message"],
            "runbook": f"{runbook_base}#{alert['runbook']}", "fired_at": stamp(alert["fired_at"]),
            "resolved_at": stamp(alert.get("resolved_at"))}
