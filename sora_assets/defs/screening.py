"""Screening: every rendered frame is scanned; blocked clips go to quarantine and stop here."""

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, Failure, MetadataValue, Output

from sora_assets.core.intake.batch_files import batch_id_of_key
from sora_assets.core.quality.metrics import clip_quality
from sora_assets.core.quality.previews import contact_sheet
from sora_assets.core.render import failpoints
from sora_assets.core.render.clip_record import ClipRecord
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.render.video_io import decode_mp4
from sora_assets.core.storage.work_area import WorkArea
from sora_assets.core.warehouse.ledger import CACHE_HIT, DEAD_LETTER, DUPLICATE, QUARANTINED
from sora_assets.core.warehouse.shard_summary import block_rate, needs_scan, unscanned_clips
from sora_assets.defs.catalog import SAFETY
from sora_assets.defs.clip_io import clip_stage
from sora_assets.defs.fencing import StepFence
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


def quarantine_row(clip: ClipRecord, key: str, reasons: list[str], policy_version: str, path: Path,
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


def scan_rows(clip: ClipRecord, key: str, verdict: Any, now: datetime) -> list[dict[str, Any]]:
    """The scan's events for one clip, then its summary row: the record the publishing gate and its check look for."""
    shard = {"partition_key": key, "batch_id": batch_id_of_key(key), "clip_id": clip.clip_id, "row": clip.row,
             "stage": "frame", "policy_version": verdict.policy_version, "recorded_at": now}
    return [{**shard, "check_name": e.check_name, "frame_index": e.frame_index, "label": e.label, "score": e.score,
             "action": e.action, "detail": e.detail} for e in verdict.events] + [{
        **shard, "check_name": SCAN_RECORD, "frame_index": None, "label": None,
        "score": float(verdict.frames_scanned), "action": verdict.verdict,
        "detail": f"frames={verdict.frames_scanned}; faces_checked={verdict.faces_checked}; "
                  f"reasons={','.join(verdict.reasons) or 'none'}"}]


@dataclass
class ShardScan:
    """What one attempt of `screened_clips` found, clip by clip, before its rows are written."""

    key: str
    now: datetime
    remembered: dict[str, dict[str, Any]]  # this shard's blocked clips from an earlier attempt, by cache key
    events: list[dict[str, Any]] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)
    previews: list[tuple[str, Any]] = field(default_factory=list)  # (clip id, frames or None when blocked)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per work file: duplicates share one scan
    blocked_rows: list[dict[str, Any]] = field(default_factory=list)

    def recall(self, clip: ClipRecord) -> None:
        """An earlier attempt of this step blocked it and the work file went with the shard's cleanup: its
        remembered verdict stands (screening re-executes from failure any number of times)."""
        record = self.remembered.get(clip.cache_key)
        if record is None:
            raise Failure(f"{clip.clip_id}: rendered file {clip.work_path} is gone and no verdict is recorded; "
                          "re-materialise rendered_clips for this shard", allow_retries=False)
        reasons = [r for r in str(record["reasons"]).split(",") if r]
        self.verdicts[clip.work_path] = {"scan_verdict": "block", "scan_reasons": reasons, "frames_scanned": 0,
                                         "quarantine_path": record["quarantine_path"]}
        self.blocked_rows.append(dict(record))
        self.events.append(quarantined_scan_record({**clip.to_dict(), "quarantined_from": self.key,
                                                    "scan_reasons": reasons,
                                                    "policy_version": record["policy_version"]}, self.key, self.now))

    def scan(self, clip: ClipRecord, frames: Any, verdict: Any, quality: dict[str, Any]) -> None:
        self.quality.append(quality)
        self.previews.append((clip.clip_id, None if verdict.verdict == "block" else frames))
        self.verdicts[clip.work_path] = {"scan_verdict": verdict.verdict, "scan_reasons": verdict.reasons,
                                         "frames_scanned": verdict.frames_scanned}
        self.events += scan_rows(clip, self.key, verdict, self.now)

    def quarantined(self, clip: ClipRecord, verdict: Any, path: Path) -> None:
        self.verdicts[clip.work_path]["quarantine_path"] = str(path)
        self.blocked_rows.append(quarantine_row(clip, self.key, verdict.reasons, verdict.policy_version, path,
                                                self.now))

    def carry(self, clips: list[ClipRecord], warehouse: ParquetWarehouse) -> None:
        """Rows of clips not scanned now: cache hits and this shard's earlier blocks keep the events and quality
        of the scan that judged them; the remembered verdicts stay (no later attempt renders them again)."""
        hits = {c.clip_id: c.cache_key for c in clips if c.render_status == CACHE_HIT}
        kept = {c.clip_id: c.cache_key for c in clips
                if c.render_status == QUARANTINED and c.quarantined_from == self.key}
        carried = carried_events(warehouse, self.key, {**hits, **kept})
        with_record = {e["clip_id"] for e in carried if e["check_name"] == SCAN_RECORD}
        self.events += carried + [quarantined_scan_record(c, self.key, self.now) for c in clips
                                  if c.render_status == QUARANTINED and c.clip_id not in with_record]
        self.quality += carried_quality(warehouse, self.key, {**hits, **kept})
        known = {b["cache_key"] for b in self.blocked_rows}
        self.blocked_rows += [r for r in self.remembered.values() if r["cache_key"] not in known]

    def metadata(self, area: WorkArea) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        if self.previews:
            sheet = area.save_preview(contact_sheet(self.previews))
            embedded = base64.b64encode(contact_sheet(self.previews[:PREVIEW_EMBED], tile=48)).decode()
            more = len(self.previews) > PREVIEW_EMBED
            metadata.update({
                "contact_sheet": MetadataValue.md(f"![contact sheet](data:image/png;base64,{embedded})"
                                                  + (f"\n\nfirst {PREVIEW_EMBED} of {len(self.previews)} clips"
                                                     if more else "")),
                "contact_sheet_file": MetadataValue.path(str(sheet))})
        verdicts = self.verdicts.values()
        blocked = sum(v["scan_verdict"] == "block" for v in verdicts)
        return {**metadata, "scanned": len(verdicts), "blocked": blocked,
                "block_rate": block_rate(blocked, len(verdicts)),
                "flagged": sum(v["scan_verdict"] == "flag" for v in verdicts),
                "frames_scanned": sum(v["frames_scanned"] for v in verdicts),
                "mean_flicker": round(sum(q["flicker"] for q in self.quality) / max(1, len(self.quality)), 5)}


def scan_clip(found: ShardScan, clip: ClipRecord, frame_safety: FrameSafetyResource,
              alignment: ClipAlignmentResource, area: WorkArea, log: Any) -> None:
    """Scan a rendered clip's frames as encoded (quality measured on the same frames); a block is quarantined."""
    frames = decode_mp4(Path(clip.work_path))
    spec = GenerationSpec.from_dict(clip.spec)
    quality = {"partition_key": found.key, "batch_id": batch_id_of_key(found.key), "clip_id": clip.clip_id,
               "cache_key": clip.cache_key, "model": spec.model_id, "width": spec.width, "height": spec.height,
               "num_frames": spec.num_frames, "recorded_at": found.now, "model_family": spec.model_family,
               "clip_score": alignment.score(spec.prompt, frames), **clip_quality(frames).as_dict()}
    verdict = frame_safety.scan(frames, clip.non_finite_frames, prompt=spec.prompt)
    found.scan(clip, frames, verdict, quality)
    if verdict.verdict == "block":
        target = area.quarantine(Path(clip.work_path), clip.clip_id, {
            "clip_id": clip.clip_id, "partition_key": found.key, "reasons": verdict.reasons,
            "policy_version": verdict.policy_version, "cache_key": clip.cache_key,
            "quarantined_at": found.now.isoformat()})
        found.quarantined(clip, verdict, target)
        log.warning(f"blocked {clip.clip_id}: {', '.join(verdict.reasons)}")


def coverage_check(clips: list[ClipRecord], events: list[dict[str, Any]]) -> AssetCheckResult:
    fresh = [c for c in clips if needs_scan(c)]
    unscanned = unscanned_clips(clips)
    recorded = {e["clip_id"] for e in events if e["check_name"] == SCAN_RECORD}
    without_record = [c.clip_id for c in fresh if c.render_status != DUPLICATE and c.clip_id not in recorded]
    return AssetCheckResult(check_name=SCAN_COVERAGE, passed=not unscanned and not without_record,
                            severity=AssetCheckSeverity.ERROR,
                            metadata={"clips_needing_scan": len(fresh), "unscanned": ", ".join(unscanned) or "none",
                                      "without_scan_record": ", ".join(without_record) or "none"})


@clip_stage("screened_clips", "rendered_clips", SAFETY, {"onnx", "opencv"},
            "Frame-level safety scan of every rendered clip (NudeNet on every frame, faces on every 5th, technical "
            "checks); blocked clips are quarantined, never signed.",
            {SCAN_COVERAGE: "Scan coverage: every clip rendered in this shard's run has a frame-scan verdict and a "
                            "frame_scan record in safety_events."})
def screened_clips(context: AssetExecutionContext, rendered_clips: list[ClipRecord],
                   frame_safety: FrameSafetyResource, warehouse: ParquetWarehouse,
                   home: HomeResource, alignment: ClipAlignmentResource) -> Iterator[Any]:
    key = context.partition_key
    fence = StepFence(context)  # at the start of the step: it remembers the coordinator's pid
    clips = ClipRecord.coerce(rendered_clips)
    area = home.work_area(key)
    failpoints.hit("scan.before", None, home.home.failpoints)
    found = ShardScan(key, datetime.now(UTC),
                      {k: r for k, r in known_quarantine(warehouse).items() if r["partition_key"] == key})
    for clip in clips:
        if clip.render_status in (CACHE_HIT, DEAD_LETTER, QUARANTINED):
            continue  # a cache hit was scanned when first published; a dead letter has no frames; a quarantined
            # clip keeps the verdict that blocked it
        if clip.work_path not in found.verdicts and not Path(clip.work_path).exists():
            found.recall(clip)
        if clip.work_path not in found.verdicts:
            scan_clip(found, clip, frame_safety, alignment, area, context.log)
        clip.update(found.verdicts[clip.work_path])
    found.carry(clips, warehouse)
    fence.check("writing scan results")
    warehouse.write("quarantined_clips", key, "screened_clips", found.blocked_rows)  # first: remembered verdicts
    warehouse.write("safety_events", key, "screened_clips", found.events)
    warehouse.write("quality_metrics", key, "screened_clips", found.quality)  # measured on the frames as encoded
    yield Output(clips, metadata=found.metadata(area))
    yield coverage_check(clips, found.events)
