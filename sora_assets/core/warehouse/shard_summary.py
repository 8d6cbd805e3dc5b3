"""What a shard's materialisations say at a glance: block rates, per-clip cost rows, gate coverage.

Plain functions over the clip dicts the assets pass along, so the figures the UI shows are unit-tested
without Dagster.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sora_assets.core.warehouse.ledger import CACHE_HIT, DEAD_LETTER, QUARANTINED

# Columns of the per-clip cost table on a shard's published_clips materialisation, in display order.
COST_COLUMNS = ["clip_id", "tier", "status", "steps", "gpu_seconds", "cost_usd", "api_equivalent_usd", "cache_hit",
                "store_object"]
MAX_EMBEDDED_BYTES = 256 * 1024  # a preview embedded in run metadata larger than this is left out, not stored


def block_rate(blocked: int, considered: int) -> float:
    """Share of `considered` items that were blocked, 0.0 when nothing was considered (not a division error)."""
    if blocked < 0 or considered < 0 or blocked > considered:
        raise ValueError(f"cannot block {blocked} of {considered}")
    return round(blocked / considered, 4) if considered else 0.0


def needs_scan(clip: dict[str, Any]) -> bool:
    """A clip with fresh frames in this run: cache hits were scanned when first published, dead letters have none,
    quarantined clips keep the verdict of the scan that blocked them."""
    return clip["render_status"] not in (CACHE_HIT, DEAD_LETTER, QUARANTINED)


def unscanned_clips(clips: Iterable[dict[str, Any]]) -> list[str]:
    """Clips with fresh frames that carry no frame-scan verdict: scan coverage is complete when this is empty."""
    return [c["clip_id"] for c in clips if needs_scan(c) and not c.get("scan_verdict")]


def untrusted_clips(clips: Iterable[dict[str, Any]]) -> list[str]:
    """Clips that passed the safety gate (so were signed or reused signed) whose C2PA state is not Trusted."""
    return [c["clip_id"] for c in clips if c.get("c2pa_state") != "Trusted"]


def store_object(store_path: str | None, store_root: Path) -> str:
    """A published clip's object name in the store (`<aa>/<sha256>.mp4`), or '' when it was not published."""
    if not store_path:
        return ""
    path = Path(store_path)
    try:
        return str(path.relative_to(store_root))
    except ValueError:
        return str(path)


def cost_rows(clips: list[dict[str, Any]], ledger: list[dict[str, Any]], store_root: Path) -> list[dict[str, Any]]:
    """One row per clip of the shard, in the shard's order, with its ledger figures (zeros for a clip that never
    reached rendering) and the store object it was published as."""
    by_clip = {row["clip_id"]: row for row in ledger}
    rows = []
    for clip in clips:
        cost = by_clip.get(clip["clip_id"], {})
        rows.append({
            "clip_id": clip["clip_id"], "tier": clip.get("tier", ""), "status": clip.get("final_status", ""),
            "steps": int(cost.get("steps") or 0), "gpu_seconds": round(float(cost.get("gpu_seconds") or 0.0), 3),
            "cost_usd": round(float(cost.get("cost_usd") or 0.0), 6),
            "api_equivalent_usd": round(float(cost.get("api_equivalent_usd") or 0.0), 2),
            "cache_hit": bool(cost.get("cache_hit", False)),
            "store_object": store_object(clip.get("store_path"), store_root),
        })
    return rows


def cost_totals(ledger: list[dict[str, Any]]) -> dict[str, float]:
    """The shard's bill: GPU time, dollars, storage, and what a hosted API would have charged."""
    gpu_seconds = sum(float(r["gpu_seconds"]) for r in ledger)
    cost = sum(float(r["cost_usd"]) for r in ledger)
    api = sum(float(r["api_equivalent_usd"]) for r in ledger)
    return {"gpu_seconds": round(gpu_seconds, 3), "cost_usd": round(cost, 6),
            "storage_usd": round(sum(float(r.get("storage_usd") or 0.0) for r in ledger), 8),
            "api_equivalent_usd": round(api, 2), "savings_vs_api_usd": round(api - cost, 2)}


def embedded_image_markdown(image: bytes, mime: str, alt: str, caption: str = "",
                            max_bytes: int = MAX_EMBEDDED_BYTES) -> str:
    """Markdown with the image inlined as a `data:` URI: the Dagster UI cannot read files on the server's disk.

    Too large an image would bloat every load of the event log, so it is replaced by a sentence saying so.
    """
    if len(image) > max_bytes:
        return f"*{alt}: {len(image):,} bytes, over the {max_bytes:,}-byte limit for embedding; see the file.*"
    encoded = base64.b64encode(image).decode("ascii")
    text = f"![{alt}](data:{mime};base64,{encoded})"
    return f"{text}\n\n{caption}" if caption else text
