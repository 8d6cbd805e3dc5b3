"""Screening: every rendered frame is scanned; blocked clips go to quarantine and stop here."""

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from sora_assets.core import failpoints
from sora_assets.core.batch import batch_id_of_key
from sora_assets.core.fsutil import atomic_copy, atomic_write_bytes, atomic_write_json
from sora_assets.core.ledger import CACHE_HIT, DEAD_LETTER, DUPLICATE, QUARANTINED
from sora_assets.core.previews import contact_sheet
from sora_assets.core.quality import clip_quality
from sora_assets.core.shard_summary import block_rate, needs_scan, unscanned_clips
from sora_assets.core.spec import GenerationSpec
from sora_assets.core.video_io import decode_mp4
from sora_assets.defs.catalog import SAFETY, owners_of
from sora_assets.defs.fencing import StepFence
from sora_assets.defs.partitions import shards_partitions
from sora_assets.resources.alignment import ClipAlignmentResource
from sora_assets.resources.home import HomeResource
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.warehouse import ParquetWarehouse

PREVIEW_EMBED = 8  # clips embedded in the run's metadata (event log size); the file holds them all


def carried_events(warehouse: ParquetWarehouse, key: str, hits: dict[str, str]) -> list[dict[str, Any]]:
    """A cache hit is not scanned again: its earlier frame-scan events in this shard are kept, not wiped."""
    previous = warehouse.read("safety_events", key)
    return [r for r in previous.to_dict(orient="records") if r["clip_id"] in hits and r["stage"] == "frame"]


def carried_quality(warehouse: ParquetWarehouse, key: str, hits: dict[str, str]) -> list[dict[str, Any]]:
    """A cache hit's quality is that of the stored clip it reuses, measured when it was first rendered."""
    if not hits:
        return []
    measured = warehouse.query("SELECT * FROM quality_metrics WHERE cache_key IN (SELECT unnest(?)) "
                               "QUALIFY row_number() OVER (PARTITION BY cache_key ORDER BY recorded_at) = 1",
                               [sorted(set(hits.values()))])
    by_key = {r["cache_key"]: r for r in measured.to_dict(orient="records")}
    return [{**by_key[cache_key], "partition_key": key, "batch_id": batch_id_of_key(key), "clip_id": clip_id}
            for clip_id, cache_key in hits.items() if cache_key in by_key]


SCAN_RECORD = "frame_scan"
SCAN_COVERAGE = "every_rendered_clip_scanned"


def known_quarantine(warehouse: ParquetWarehouse) -> dict[str, dict[str, Any]]:
    """Clips the frame scan blocked, in any shard, by cache key (the first verdict wins): like a dead letter,
    a terminal outcome that no retry, re-materialisation or backfill renders again."""
    frame = warehouse.read("quarantined_clips")
    known: dict[str, dict[str, Any]] = {}
    for row in sorted(frame.to_dict(orient="records"), key=lambda r: (r["recorded_at"], r["partition_key"])):
        known.setdefault(row["cache_key"], row)
    return known


def quarantine_row(clip: dict[str, Any], key: str, reasons: list[str], policy_version: str, path: Path,
                   now: datetime) -> dict[str, Any]:
    """The remembered outcome of a blocked clip: verdict, frames hash and the GPU time its render cost."""
    return {"partition_key": key, "batch_id": batch_id_of_key(key), "clip_id": clip["clip_id"],
            "cache_key": clip["cache_key"], "reasons": ",".join(reasons), "policy_version": policy_version,
            "frames_sha256": clip.get("frames_sha256"), "gpu_seconds": float(clip.get("gpu_seconds") or 0.0),
            "steps_run": clip.get("steps_run"), "device": clip.get("device"),
            "render_started_at": clip.get("render_started_at"), "quarantine_path": str(path), "recorded_at": now}


def quarantined_scan_record(clip: dict[str, Any], key: str, now: datetime) -> dict[str, Any]:
    """The scan record of a clip blocked by an earlier attempt (its frames are not scanned again)."""
    return {"partition_key": key, "batch_id": batch_id_of_key(key), "clip_id": clip["clip_id"], "row": clip["row"],
            "stage": "frame", "check_name": SCAN_RECORD, "frame_index": None, "label": None, "score": None,
            "action": "block", "policy_version": clip.get("policy_version"),
            "detail": f"quarantined earlier in {clip.get('quarantined_from')}; "
                      f"reasons={','.join(clip.get('scan_reasons') or []) or 'none'}", "recorded_at": now}


@asset(partitions_def=shards_partitions, group_name=SAFETY, owners=owners_of(SAFETY), kinds={"onnx", "opencv"},
       description="Frame-level safety scan of every rendered clip (NudeNet on every frame, faces on every 5th, "
                   "technical checks); blocked clips are quarantined, never signed.",
       check_specs=[AssetCheckSpec(SCAN_COVERAGE, asset="screened_clips", partitions_def=shards_partitions,
                                   description="Scan coverage: every clip rendered in this shard's run has a "
                                               "frame-scan verdict and a frame_scan record in safety_events.")])
def screened_clips(context: AssetExecutionContext, rendered_clips: list[dict[str, Any]],
                   frame_safety: FrameSafetyResource, warehouse: ParquetWarehouse,
                   home: HomeResource, alignment: ClipAlignmentResource) -> Iterator[Any]:
    key = context.partition_key
    fence = StepFence(context)
    layout = home.home
    events: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    previews: list[tuple[str, Any]] = []  # (clip id, frames or None when blocked)
    verdicts: dict[str, dict[str, Any]] = {}  # per work file: duplicates share one scan
    now = datetime.now(UTC)
    failpoints.hit("scan.before", None, layout.failpoints)
    remembered = {k: r for k, r in known_quarantine(warehouse).items() if r["partition_key"] == key}
    blocked_rows: list[dict[str, Any]] = []
    for clip in rendered_clips:
        if clip["render_status"] in (CACHE_HIT, DEAD_LETTER, QUARANTINED):
            continue  # a cache hit was scanned when first published; a dead letter has no frames; a quarantined
            # clip keeps the verdict that blocked it
        work_path = clip["work_path"]
        if work_path not in verdicts and not Path(work_path).exists():
            # an earlier attempt of this step blocked it and the work file went with the shard's cleanup:
            # its remembered verdict stands (screening re-executes from failure any number of times)
            record = remembered.get(clip["cache_key"])
            if record is None:
                raise Failure(f"{clip['clip_id']}: rendered file {work_path} is gone and no verdict is recorded; "
                              "re-materialise rendered_clips for this shard", allow_retries=False)
            reasons = [r for r in str(record["reasons"]).split(",") if r]
            verdicts[work_path] = {"scan_verdict": "block", "scan_reasons": reasons, "frames_scanned": 0,
                                   "quarantine_path": record["quarantine_path"]}
            blocked_rows.append(dict(record))
            events.append({**quarantined_scan_record({**clip, "quarantined_from": key, "scan_reasons": reasons,
                                                      "policy_version": record["policy_version"]}, key, now)})
        if work_path not in verdicts:
            frames = decode_mp4(Path(work_path))
            spec = GenerationSpec.from_dict(clip["spec"])
            quality.append({"partition_key": key, "batch_id": batch_id_of_key(key), "clip_id": clip["clip_id"],
                            "cache_key": clip["cache_key"], "model": spec.model_id, "width": spec.width,
                            "height": spec.height, "num_frames": spec.num_frames, "recorded_at": now,
                            "model_family": spec.model_family,
                            "clip_score": alignment.score(spec.prompt, frames), **clip_quality(frames).as_dict()})
            verdict = frame_safety.scan(frames, clip.get("non_finite_frames"), prompt=spec.prompt)
            previews.append((clip["clip_id"], None if verdict.verdict == "block" else frames))
            verdicts[work_path] = {"scan_verdict": verdict.verdict, "scan_reasons": verdict.reasons,
                                   "frames_scanned": verdict.frames_scanned}
            events += [{"partition_key": key, "batch_id": batch_id_of_key(key), "clip_id": clip["clip_id"],
                        "row": clip["row"], "stage": "frame", "check_name": e.check_name,
                        "frame_index": e.frame_index, "label": e.label, "score": e.score, "action": e.action,
                        "policy_version": verdict.policy_version, "detail": e.detail, "recorded_at": now}
                       for e in verdict.events]
            # one summary row per scanned clip: the record the publishing gate and its check look for
            events.append({"partition_key": key, "batch_id": batch_id_of_key(key), "clip_id": clip["clip_id"],
                           "row": clip["row"], "stage": "frame", "check_name": SCAN_RECORD, "frame_index": None,
                           "label": None, "score": float(verdict.frames_scanned), "action": verdict.verdict,
                           "policy_version": verdict.policy_version,
                           "detail": f"frames={verdict.frames_scanned}; faces_checked={verdict.faces_checked}; "
                                     f"reasons={','.join(verdict.reasons) or 'none'}", "recorded_at": now})
            if verdict.verdict == "block":
                # copied, not moved: the work file stays until published_clips clears the shard, so a
                # re-execution of this step (before its rows below are written) scans the same file again
                target = atomic_copy(Path(work_path), layout.quarantine / key / f"{clip['clip_id']}.mp4")
                atomic_write_json(target.with_suffix(".reason.json"), {
                    "clip_id": clip["clip_id"], "partition_key": key, "reasons": verdict.reasons,
                    "policy_version": verdict.policy_version, "cache_key": clip["cache_key"],
                    "quarantined_at": now.isoformat()})
                verdicts[work_path]["quarantine_path"] = str(target)
                blocked_rows.append(quarantine_row(clip, key, verdict.reasons, verdict.policy_version, target, now))
                context.log.warning(f"blocked {clip['clip_id']}: {', '.join(verdict.reasons)}")
        clip.update(verdicts[work_path])
    hits = {c["clip_id"]: c["cache_key"] for c in rendered_clips if c["render_status"] == CACHE_HIT}
    kept = {c["clip_id"]: c["cache_key"] for c in rendered_clips
            if c["render_status"] == QUARANTINED and c.get("quarantined_from") == key}
    carried = carried_events(warehouse, key, {**hits, **kept})  # the events of the scan that blocked them
    with_record = {e["clip_id"] for e in carried if e["check_name"] == SCAN_RECORD}
    events += carried + [quarantined_scan_record(c, key, now) for c in rendered_clips
                         if c["render_status"] == QUARANTINED and c["clip_id"] not in with_record]
    quality += carried_quality(warehouse, key, {**hits, **kept})
    # the remembered verdicts first: once written, no later attempt renders these clips again
    blocked_rows += [r for r in remembered.values() if r["cache_key"] not in {b["cache_key"] for b in blocked_rows}]
    fence.check("writing scan results")
    warehouse.write("quarantined_clips", key, "screened_clips", blocked_rows)
    warehouse.write("safety_events", key, "screened_clips", events)
    warehouse.write("quality_metrics", key, "screened_clips", quality)  # measured on the frames as encoded
    metadata: dict[str, Any] = {}
    if previews:
        sheet = atomic_write_bytes(layout.previews / f"{key}.png", contact_sheet(previews))
        embedded = base64.b64encode(contact_sheet(previews[:PREVIEW_EMBED], tile=48)).decode()
        metadata.update({
            "contact_sheet": MetadataValue.md(f"![contact sheet](data:image/png;base64,{embedded})"
                                              + (f"\n\nfirst {PREVIEW_EMBED} of {len(previews)} clips"
                                                 if len(previews) > PREVIEW_EMBED else "")),
            "contact_sheet_file": MetadataValue.path(str(sheet))})
    blocked = sum(v["scan_verdict"] == "block" for v in verdicts.values())
    metadata.update({
        "scanned": len(verdicts),
        "blocked": blocked,
        "block_rate": block_rate(blocked, len(verdicts)),
        "flagged": sum(v["scan_verdict"] == "flag" for v in verdicts.values()),
        "frames_scanned": sum(v["frames_scanned"] for v in verdicts.values()),
        "mean_flicker": round(sum(q["flicker"] for q in quality) / max(1, len(quality)), 5),
    })
    yield Output(rendered_clips, metadata=metadata)
    fresh = [c for c in rendered_clips if needs_scan(c)]
    unscanned = unscanned_clips(rendered_clips)
    recorded = {e["clip_id"] for e in events if e["check_name"] == SCAN_RECORD}
    without_record = [c["clip_id"] for c in fresh if c["render_status"] != DUPLICATE and c["clip_id"] not in recorded]
    yield AssetCheckResult(check_name=SCAN_COVERAGE, passed=not unscanned and not without_record,
                           severity=AssetCheckSeverity.ERROR,
                           metadata={"clips_needing_scan": len(fresh), "unscanned": ", ".join(unscanned) or "none",
                                     "without_scan_record": ", ".join(without_record) or "none"})
