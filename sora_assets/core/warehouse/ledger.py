"""Rows for the clips table and the cost ledger, built from a clip's journey through the stages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sora_assets.core.planning.cost import (
    DEFAULT_OVERHEAD,
    PriceCurve,
    api_equivalent_usd,
    gpu_cost_usd,
    storage_cost_usd,
    window_start,
)
from sora_assets.core.render.clip_record import ClipRecord, RenderStatus
from sora_assets.core.render.spec import GenerationSpec

# the statuses live with the record (core/render/clip_record.py); these names stay for the modules that import them
RENDERED = RenderStatus.RENDERED
CACHE_HIT = RenderStatus.CACHE_HIT
DUPLICATE = RenderStatus.DUPLICATE
DEAD_LETTER = RenderStatus.DEAD_LETTER
QUARANTINED = RenderStatus.QUARANTINED


def billable(clip: ClipRecord | dict[str, Any]) -> bool:
    """GPU time was spent on this clip in this shard (a render, a render stopped by NaN, or this shard's own
    earlier render of a clip the frame scan blocked or that an attempt stored before it died: its spend stays
    in the books, counted once)."""
    return (clip["render_status"] == RENDERED or bool(clip.get("own_publish"))
            or (clip["render_status"] in (DEAD_LETTER, QUARANTINED) and bool(clip.get("billable"))))


def _started_at(clip: ClipRecord | dict[str, Any]) -> datetime:
    raw = clip.get("render_started_at")
    return datetime.fromisoformat(raw) if raw else datetime.now(UTC)


def ledger_row(clip: ClipRecord | dict[str, Any], partition_key: str, batch_id: str, curve: PriceCurve,
               previous: dict[str, dict[str, Any]], overhead: float = DEFAULT_OVERHEAD) -> dict[str, Any]:
    """One ledger row per clip that reached rendering.

    Re-materialising a shard turns its own clips into cache hits; their original rows are carried
    over unchanged so the ledger keeps the GPU time actually spent, once.
    """
    spec = GenerationSpec.from_dict(clip["spec"])
    earlier = previous.get(clip["clip_id"])
    spent = billable(clip)
    carried = not spent or clip["render_status"] == QUARANTINED or clip.get("own_publish")
    if carried and earlier is not None and not earlier["cache_hit"] and earlier.get("cache_key") == clip["cache_key"]:
        return dict(earlier)  # a quarantined clip's spend was booked by the attempt that rendered it
    started = window_start(_started_at(clip))
    price = curve.price_at(started)
    gpu_seconds = float(clip.get("gpu_seconds") or 0.0) if spent else 0.0
    return {
        "partition_key": partition_key, "batch_id": batch_id, "clip_id": clip["clip_id"],
        "cache_key": clip["cache_key"], "tier": clip["tier"], "model": spec.model_id,
        "steps": int(clip.get("steps_run") or spec.steps),
        "gpu_seconds": gpu_seconds, "window_start": started, "price_per_gpu_hour": price,
        "overhead": overhead, "cost_usd": gpu_cost_usd(gpu_seconds, price, overhead),
        "api_equivalent_usd": api_equivalent_usd(spec.width, spec.height, spec.duration_s,
                                                 clip.get("complexity") or "medium", clip["tier"] == "paid"),
        # a render that was stored pays its storage; a cache hit or duplicate reuses an object already paid for
        "storage_usd": storage_cost_usd(int(clip.get("stored_bytes") or 0)) if spent else 0.0,
        "cache_hit": clip["render_status"] in (CACHE_HIT, DUPLICATE) and not clip.get("own_publish"),
        "device": clip.get("device") or "none",
        "recorded_at": datetime.now(UTC), "preset": spec.preset, "model_family": spec.model_family,
    }


def clip_row(clip: ClipRecord | dict[str, Any], partition_key: str, batch_id: str) -> dict[str, Any]:
    spec = GenerationSpec.from_dict(clip["spec"])
    return {
        "partition_key": partition_key, "batch_id": batch_id, "clip_id": clip["clip_id"], "row": clip["row"],
        "source_id": clip.get("source_id"), "tier": clip["tier"], "status": clip["final_status"],
        "cache_key": clip["cache_key"], "sha256": clip.get("sha256"), "store_path": clip.get("store_path"),
        "model": spec.model_id, "model_revision": spec.model_revision, "seed": spec.seed,
        "seed_derived": bool(clip.get("seed_derived")), "steps": int(clip.get("steps_run") or spec.steps),
        "width": spec.width, "height": spec.height, "num_frames": spec.num_frames, "fps": spec.fps,
        "duration_s": spec.duration_s, "prompt_sha256": spec.prompt_sha256(),
        "c2pa_state": clip.get("c2pa_state"), "scan_verdict": clip.get("scan_verdict"),
        "warnings": "; ".join(clip.get("warnings") or []), "gpu_seconds": float(clip.get("gpu_seconds") or 0.0),
        "resumed_from_step": int(clip.get("resumed_from_step") or 0),
        "step_seconds_mean": clip.get("step_seconds_mean"), "frames_sha256": clip.get("frames_sha256"),
        "recorded_at": datetime.now(UTC), "preset": spec.preset, "model_family": spec.model_family,
    }
