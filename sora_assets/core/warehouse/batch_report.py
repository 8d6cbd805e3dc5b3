"""A batch's night in figures: what `sora-assets status --batch` prints and the completion notification sends.

Pure arithmetic over rows already gathered (registered shards, warehouse clips/ledger/dead letters/render
failures, the latest plan); `sora_assets/services/observability.py` gathers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pandas as pd

TERMINAL_CLIP_STATUSES = ("published", "cache_hit", "blocked", "dead_letter", "withheld")


def _count(frame: pd.DataFrame, column: str, value: Any) -> int:
    return int((frame[column] == value).sum()) if len(frame) and column in frame else 0


def _sum(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].fillna(0).sum()) if len(frame) and column in frame else 0.0


def batch_figures(batch_id: str, rows: int, shard_keys: Iterable[str], published: set[str],
                  failed: dict[str, str], active: set[str], clips: pd.DataFrame, ledger: pd.DataFrame,
                  rejections: pd.DataFrame, failures: pd.DataFrame, plan: dict[str, Any] | None,
                  now: datetime) -> dict[str, Any]:
    """Counts, cost and plan progress of one batch. A shard is done when published; it is terminally failed
    when its latest render run failed and none is in progress. The batch is finished when every shard is one
    or the other."""
    keys = sorted(shard_keys)
    failed_now = {k: failed[k] for k in keys if k in failed and k not in published and k not in active}
    pending = [k for k in keys if k not in published and k not in failed_now]
    assignments = [a for a in (plan or {}).get("assignments", []) if a.get("batch_id") == batch_id
                   or a["shard"] in set(keys)]
    late = {x["shard"]: x["late_by_s"] for x in (plan or {}).get("late", [])}
    at_risk = sorted(a["shard"] for a in assignments if a["shard"] in pending
                     and (a["shard"] in late or datetime.fromisoformat(a["end"]) > datetime.fromisoformat(a["deadline"])
                          or (datetime.fromisoformat(a["start"]) < now and a["shard"] not in active)))
    eta = max((a["end"] for a in assignments if a["shard"] in pending), default=None)
    gpu_seconds = _sum(ledger, "gpu_seconds")
    cost = _sum(ledger, "cost_usd")
    api = _sum(ledger, "api_equivalent_usd")
    reasons = [{"shard": k, "reason": failed_now[k]} for k in sorted(failed_now)]
    if len(failures):
        for record in failures.sort_values("recorded_at").to_dict(orient="records"):
            if record["partition_key"] in failed_now:
                reasons.append({"shard": record["partition_key"], "reason": f"{record['reason']}: "
                                                                            f"{str(record['error'])[:200]}"})
    dead = clips[clips["status"] == "dead_letter"] if len(clips) and "status" in clips else clips.iloc[0:0]
    for record in dead.to_dict(orient="records"):
        reasons.append({"clip_id": record["clip_id"], "reason": "dead letter (non-finite latents or known failure)"})
    return {
        "batch_id": batch_id, "rows": rows, "shards": len(keys), "shards_published": len(published & set(keys)),
        "shards_failed": len(failed_now), "shards_pending": len(pending),
        "finished": not pending,
        "clips_done": int(clips["status"].isin(TERMINAL_CLIP_STATUSES).sum()) if len(clips) else 0,
        "clips_total": rows - len(rejections), "rejected_rows": len(rejections),
        # rendered: GPU work done for the clip; a repeat of a clip in the same shard is published without any,
        # like a cache hit
        "rendered": int(((clips["status"] == "published") & (clips["gpu_seconds"].fillna(0) > 0)).sum())
        if len(clips) else 0,
        "cache_hits": _count(clips, "status", "cache_hit") + (
            int(((clips["status"] == "published") & (clips["gpu_seconds"].fillna(0) <= 0)).sum()) if len(clips) else 0),
        "blocked": _count(clips, "status", "blocked"), "dead_letters": _count(clips, "status", "dead_letter"),
        "withheld": _count(clips, "status", "withheld"),
        "gpu_hours": round(gpu_seconds / 3600, 6), "cost_usd": round(cost, 6),
        "api_equivalent_usd": round(api, 4), "savings_usd": round(api - cost, 4),
        "planned_cost_usd": round(sum(a["est_cost_usd"] for a in assignments), 6),
        "planned_gpu_hours": round(sum(a["est_gpu_seconds"] for a in assignments) / 3600, 6),
        "plan_id": (plan or {}).get("plan_id"), "eta": eta, "at_risk": at_risk, "failures": reasons,
    }
