"""Publishing: signed clips into the content-addressed store (the cache); clips and ledger rows."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MetadataValue,
    Output,
)

from sora_assets.core.intake.batch_files import batch_id_of_key
from sora_assets.core.quality.previews import contact_sheet
from sora_assets.core.render import failpoints
from sora_assets.core.render.clip_record import ClipRecord
from sora_assets.core.render.spend import attempt_rows
from sora_assets.core.render.video_io import decode_mp4
from sora_assets.core.warehouse.ledger import CACHE_HIT, DEAD_LETTER, RENDERED, clip_row, ledger_row
from sora_assets.core.warehouse.shard_summary import block_rate, cost_rows, cost_totals, embedded_image_markdown
from sora_assets.defs.catalog import WAREHOUSE
from sora_assets.defs.clip_io import clip_stage
from sora_assets.defs.fencing import StepFence
from sora_assets.defs.metadata import cost_table
from sora_assets.defs.screening import PREVIEW_EMBED, SCAN_RECORD
from sora_assets.resources.home import HomeResource
from sora_assets.resources.planner import PlannerResource
from sora_assets.resources.store import ClipStore
from sora_assets.resources.warehouse import ParquetWarehouse

SCANNED_AND_SIGNED = "published_clips_scanned_and_trusted"
LEDGER_COMPLETE = "ledger_has_one_row_per_clip"


SCAN_RECORDED = "published_clips_have_scan_records"


def clips_without_scan_record(warehouse: ParquetWarehouse, key: str) -> list[str]:
    """Published clips of the shard with no pass/flag frame-scan record for their video (by sha256:
    a cache hit's record is the scan of the render it reuses)."""
    missing = warehouse.query("""
        SELECT c.clip_id FROM clips AS c
        WHERE c.partition_key = ? AND c.sha256 IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM safety_events AS e JOIN clips AS scanned
              ON e.clip_id = scanned.clip_id AND e.partition_key = scanned.partition_key
            WHERE scanned.sha256 = c.sha256 AND e.check_name = ? AND e.action IN ('pass', 'flag'))
        ORDER BY c.clip_id""", [key, SCAN_RECORD])
    return list(missing.clip_id)


def final_status(clip: dict[str, Any]) -> str:
    if clip.get("sha256"):
        return "published" if clip["render_status"] != CACHE_HIT or clip.get("own_publish") else "cache_hit"
    if clip["render_status"] == DEAD_LETTER:
        return "dead_letter"
    if clip.get("scan_verdict") == "block":
        return "blocked"
    return "withheld"


def clips_table(clips: list[dict[str, Any]], ledger: list[dict[str, Any]], quality: Any) -> str:
    """Markdown: each clip's outcome, cost, safety and quality, for the shard's page in the UI."""
    cost = {row["clip_id"]: row for row in ledger}
    flicker = dict(zip(quality.clip_id, quality.flicker, strict=True)) if len(quality) else {}
    lines = ["| clip | status | steps | GPU s | cost $ | scan | C2PA | flicker |", "|---|---|---|---|---|---|---|---|"]
    for clip in clips:
        row = cost.get(clip["clip_id"], {})
        measured = flicker.get(clip["clip_id"])
        lines.append(f"| {clip['clip_id']} | {clip['final_status']} | {row.get('steps', '')} | "
                     f"{row.get('gpu_seconds', 0):.2f} | {row.get('cost_usd', 0):.5f} | "
                     f"{clip.get('scan_verdict') or ''} | {clip.get('c2pa_state') or ''} | "
                     f"{'' if measured is None else f'{measured:.4f}'} |")
    return "\n".join(lines)


PREVIEW_LABEL_WIDTH = 176  # room for a whole clip id (22 characters) beside 48-px tiles


def published_preview(clips: list[dict[str, Any]]) -> tuple[bytes, int] | None:
    """A JPEG contact sheet of the shard's first clips as published (blocked ones crossed out), and how many
    clips it shows; None when no clip has frames to show (every clip dead-lettered)."""
    shown = [c for c in clips if c["final_status"] in ("published", "cache_hit", "blocked")][:PREVIEW_EMBED]
    if not shown:
        return None
    tiles = [(c["clip_id"], decode_mp4(Path(c["store_path"])) if c.get("store_path") else None) for c in shown]
    return contact_sheet(tiles, tile=48, image_format="jpeg", label_width=PREVIEW_LABEL_WIDTH), len(shown)


def store_sidecar(clip: ClipRecord, key: str, now: str) -> dict[str, Any]:
    """What the store keeps beside a published clip: enough to serve it as a cache hit and to book it."""
    return {"clip_id": clip.clip_id, "partition_key": key, "spec": clip.spec, "steps_run": clip.steps_run,
            "gpu_seconds": clip.gpu_seconds, "resumed_from_step": clip.get("resumed_from_step", 0),
            "frames_sha256": clip.frames_sha256, "step_seconds": clip.step_seconds, "device": clip.device,
            "conditioning": clip.spec.get("conditioning"), "conditioning_sha256": clip.conditioning_sha256,
            "shot": clip.shot, "scan_verdict": clip.scan_verdict, "scan_reasons": clip.scan_reasons,
            "c2pa_state": clip.c2pa_state, "published_at": now}


def publish(clips: list[ClipRecord], store: ClipStore, key: str, failpoint_dir: Path) -> None:
    """Signed clips into the store (a cache hit names its object), then each clip's final status."""
    now = datetime.now(UTC).isoformat()
    for clip in clips:
        if clip.render_status == CACHE_HIT:
            stored = store.get(clip.store_sha256)
        elif clip.signed_path:
            stored = store.lookup(clip.cache_key) or store.publish(Path(clip.signed_path), clip.cache_key,
                                                                   store_sidecar(clip, key, now),
                                                                   failpoint_dir=failpoint_dir)
        else:
            continue
        clip.update(sha256=stored.sha256, store_path=str(stored.path), stored_bytes=stored.path.stat().st_size,
                    scan_verdict=clip.scan_verdict or stored.sidecar.get("scan_verdict"))
    for clip in clips:
        clip.final_status = final_status(clip)


def published_metadata(clips: list[ClipRecord], ledger: list[dict[str, Any]], store: ClipStore,
                       warehouse: ParquetWarehouse, key: str) -> dict[str, Any]:
    published = [c for c in clips if c.sha256]
    blocked = sum(c.final_status == "blocked" for c in clips)
    totals = cost_totals(ledger)
    preview: dict[str, Any] = {}
    if (sheet := published_preview(clips)) is not None:
        image, shown = sheet
        caption = f"{shown} of {len(clips)} clips; 4 frames each, blocked clips crossed out"
        preview = {"contact_sheet": MetadataValue.md(embedded_image_markdown(image, "image/jpeg", "contact sheet",
                                                                             caption)),
                   "contact_sheet_bytes": len(image)}
    return {
        "clips": len(clips), "published": len(published),
        "rendered": sum(c.render_status == RENDERED for c in clips),
        "cache_hits": sum(c.render_status == CACHE_HIT for c in clips),
        "blocked": blocked, "block_rate": block_rate(blocked, len(clips)),
        "dead_letters": sum(c.final_status == "dead_letter" for c in clips),
        "gpu_seconds": totals["gpu_seconds"], "cost_usd": totals["cost_usd"],
        "api_equivalent_usd": totals["api_equivalent_usd"], "savings_vs_api_usd": totals["savings_vs_api_usd"],
        **preview,
        "cost_table": cost_table(cost_rows(clips, ledger, store.location)),
        "store": MetadataValue.path(str(store.location)),
        **({"first_clip": MetadataValue.path(published[0].store_path)} if published else {}),
        "clips_table": MetadataValue.md(clips_table(clips, ledger, warehouse.read("quality_metrics", key))),
    }


def publishing_checks(clips: list[ClipRecord], ledger: list[dict[str, Any]],
                      warehouse: ParquetWarehouse, key: str) -> Iterator[AssetCheckResult]:
    published = [c for c in clips if c.sha256]
    ungated = [c.clip_id for c in published if c.c2pa_state != "Trusted" or c.scan_verdict not in ("pass", "flag")]
    yield AssetCheckResult(check_name=SCANNED_AND_SIGNED, passed=not ungated,
                           severity=AssetCheckSeverity.ERROR,
                           metadata={"published": len(published), "ungated": ", ".join(ungated) or "none"})
    unscanned = clips_without_scan_record(warehouse, key)
    yield AssetCheckResult(check_name=SCAN_RECORDED, passed=not unscanned, severity=AssetCheckSeverity.ERROR,
                           metadata={"published": len(published),
                                     "without_scan_record": ", ".join(unscanned) or "none"})
    ledger_ids = [r["clip_id"] for r in ledger]
    yield AssetCheckResult(check_name=LEDGER_COMPLETE,
                           passed=len(ledger_ids) == len(set(ledger_ids)) == len(clips),
                           metadata={"ledger_rows": len(ledger_ids), "clips": len(clips)})


@clip_stage("published_clips", "signed_clips", WAREHOUSE, {"duckdb", "parquet"},
            "Signed clips in the content-addressed store (also the render cache), with clips and cost_ledger rows "
            "per shard; the shard's contact sheet and cost table are in its metadata.",
            {SCANNED_AND_SIGNED: "Every published clip passed the frame scan and verifies as Trusted.",
             LEDGER_COMPLETE: "Ledger completeness: exactly one cost_ledger row per clip of the shard.",
             SCAN_RECORDED: "Every published clip (cache hits included) has a passing frame-scan record (pass or "
                            "flag) in safety_events."})
def published_clips(context: AssetExecutionContext, signed_clips: list[ClipRecord], store: ClipStore,
                    warehouse: ParquetWarehouse, home: HomeResource, planner: PlannerResource) -> Iterator[Any]:
    key = context.partition_key
    fence = StepFence(context)
    fence.check("publishing")  # an orphan of a failed run publishes nothing: the backfill's run does
    clips = ClipRecord.coerce(signed_clips)
    batch_id = batch_id_of_key(key)
    area = home.work_area(key, store.checkpoint_mirror())
    publish(clips, store, key, home.home.failpoints)
    curve = planner.prices(home.home).curve  # the same prices the plan used, so estimate and actual compare
    previous = {row["clip_id"]: row for row in warehouse.read("cost_ledger", key).to_dict(orient="records")}
    ledger = [ledger_row(c, key, batch_id, curve, previous, planner.overhead) for c in clips]
    failpoints.hit("publish.before_ledger", None, home.home.failpoints)  # clips stored, books not yet written
    fence.check("writing ledger rows")
    # every attempt's spend, before the ledger that bills it (the work area holding the journal goes below)
    warehouse.write("render_attempts", key, "published_clips", attempt_rows(
        area.spend_records(), batch_id, warehouse.read("render_attempts", key).to_dict(orient="records")))
    warehouse.write("cost_ledger", key, "published_clips", ledger)
    warehouse.write("clips", key, "published_clips", [clip_row(c, key, batch_id) for c in clips])
    if swept := area.clear():  # every clip is now published, blocked or dead-lettered
        context.log.info(f"removed {len(swept)} stale temp file(s) left by killed writers")
    yield Output(clips, metadata=published_metadata(clips, ledger, store, warehouse, key))
    yield from publishing_checks(clips, ledger, warehouse, key)
