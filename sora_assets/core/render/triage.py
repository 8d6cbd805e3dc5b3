"""Triage of a shard's accepted rows before rendering, and the shard's render summary afterwards.

Pure decisions: the caller passes lookups for what lives elsewhere (the store, the dead-letter and
quarantine tables, earlier attempts' records in the work area) and gets each clip's outcome. In order:
a cache hit, a dead letter, a duplicate of an earlier clip of the shard, a spec the frame scan blocked,
a render an earlier attempt finished, or a clip to render (resumed from its checkpoint when it has one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sora_assets.core.render.clip_record import ClipRecord, RenderStatus
from sora_assets.core.render.spec import GenerationSpec

NAN_REASON = "non_finite_latents"


@dataclass
class Triage:
    clips: list[ClipRecord] = field(default_factory=list)  # every clip of the shard, in row order
    first_of: dict[str, ClipRecord] = field(default_factory=dict)  # cache key -> the clip that renders it
    to_render: list[ClipRecord] = field(default_factory=list)  # no outcome yet: rendered (or resumed) now

    @property
    def plain(self) -> list[ClipRecord]:
        return [c for c in self.to_render if not c.spec.get("conditioning")]

    @property
    def conditioned(self) -> list[ClipRecord]:
        """Need a first frame: rendered after the others, one by one, in shot order."""
        return [c for c in self.to_render if c.spec.get("conditioning")]


def cache_hit(clip: ClipRecord, sha256: str, sidecar: Mapping[str, Any], key: str, booked: set[str]) -> None:
    """A stored clip with this spec: reused at zero GPU-seconds, unless it is this shard's own render that an
    attempt stored before it died, with no ledger row yet: then it is still this shard's spend."""
    spec = GenerationSpec.from_dict(clip.spec)
    clip.update(render_status=RenderStatus.CACHE_HIT, store_sha256=sha256,
                steps_run=sidecar.get("steps_run", spec.steps), frames_sha256=sidecar.get("frames_sha256"))
    if sidecar.get("partition_key") == key and sidecar.get("clip_id") == clip.clip_id and clip.clip_id not in booked:
        clip.update(own_publish=True, gpu_seconds=float(sidecar.get("gpu_seconds") or 0.0),
                    device=sidecar.get("device"), resumed_from_step=sidecar.get("resumed_from_step", 0),
                    render_started_at=sidecar.get("published_at"))


def dead_letter(clip: ClipRecord, earlier: Mapping[str, Any]) -> None:
    """A spec already dead-lettered (non-retryable): not rendered twice, not billed again."""
    clip.update(render_status=RenderStatus.DEAD_LETTER, billable=False, nan_step=int(earlier["step"]),
                dead_letter_reason=earlier["reason"], dead_letter_recorded_at=earlier["recorded_at"],
                dead_letter_from=earlier["partition_key"])


def quarantined_clip(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A clip the frame scan blocked in an earlier attempt: its verdict, frames hash and spend, not a render.

    Billable only in the shard that rendered it (its spend is booked once, there, however often it is asked for).
    """
    own = record["partition_key"] == key
    record = {k: None if isinstance(v, float) and v != v else v for k, v in record.items()}  # NaN from Parquet
    return {"render_status": RenderStatus.QUARANTINED, "billable": own, "quarantined_from": record["partition_key"],
            "gpu_seconds": float(record["gpu_seconds"] or 0.0) if own else 0.0, "scan_verdict": "block",
            "scan_reasons": [r for r in str(record["reasons"] or "").split(",") if r], "frames_scanned": 0,
            "policy_version": record["policy_version"], "frames_sha256": record["frames_sha256"],
            "steps_run": record["steps_run"], "device": record["device"],
            "render_started_at": record["render_started_at"], "quarantine_path": record["quarantine_path"]}


QUARANTINE_FIELDS = tuple(quarantined_clip({"partition_key": "", "gpu_seconds": 0.0, "reasons": "",
                                            "policy_version": None, "frames_sha256": None, "steps_run": None,
                                            "device": None, "render_started_at": None, "quarantine_path": None},
                                           "").keys())


def triage(rows: Iterable[Mapping[str, Any]], key: str, stored: Callable[[str], Any],
           dead: Mapping[str, Mapping[str, Any]], blocked: Mapping[str, Mapping[str, Any]], booked: set[str],
           finished: Callable[[str], dict[str, Any] | None]) -> Triage:
    """Each row's outcome before any rendering. `stored(cache_key)` is the store's object (`.sha256`,
    `.sidecar`) or None; `finished(cache_key)` an earlier attempt's render record or None."""
    result = Triage()
    for row in rows:
        cache_key = GenerationSpec.from_dict(row["spec"]).cache_key()
        clip = ClipRecord.from_dict({**row, "cache_key": cache_key, "gpu_seconds": 0.0})
        result.clips.append(clip)
        if (hit := stored(cache_key)) is not None:
            cache_hit(clip, hit.sha256, hit.sidecar, key, booked)
        elif cache_key in dead:
            dead_letter(clip, dead[cache_key])
        elif cache_key in result.first_of:
            clip.update(render_status=RenderStatus.DUPLICATE, duplicate_of=result.first_of[cache_key].clip_id)
        else:
            result.first_of[cache_key] = clip
            if cache_key in blocked:  # the frame scan blocked this spec before: a terminal, remembered outcome
                clip.update(quarantined_clip(blocked[cache_key], key))
            elif (record := finished(cache_key)) is not None:
                clip.update(record, reused_attempt=True)
            else:
                result.to_render.append(clip)
    return result


def settle_duplicates(triaged: Triage) -> None:
    """Duplicates follow the clip that rendered their spec (its file, its dead letter, its quarantine)."""
    for clip in triaged.clips:
        if clip.render_status != RenderStatus.DUPLICATE:
            continue
        source = triaged.first_of[clip.cache_key]
        if source.render_status == RenderStatus.DEAD_LETTER:
            clip.update(render_status=RenderStatus.DEAD_LETTER, billable=False, nan_step=source.nan_step,
                        dead_letter_reason=source.dead_letter_reason)
        elif source.render_status == RenderStatus.QUARANTINED:
            clip.update({k: source.get(k) for k in QUARANTINE_FIELDS}, billable=False, gpu_seconds=0.0)
        else:
            clip.update(work_path=source.work_path, steps_run=source.steps_run, frames_sha256=source.frames_sha256)


def dead_letter_rows(clips: Iterable[ClipRecord], previous: Mapping[str, Mapping[str, Any]], key: str,
                     batch_id: str, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The shard's `dead_letters` rows and their `safety_events` (a reliability event per non-retryable one).
    A dead letter carried from an earlier attempt keeps its time and spend."""
    letters, events = [], []
    for clip in clips:
        if clip.render_status != RenderStatus.DEAD_LETTER:
            continue
        earlier = previous.get(clip.clip_id)
        recorded_at = earlier["recorded_at"] if earlier is not None and not clip.billable else now
        letters.append({
            "partition_key": key, "batch_id": batch_id, "clip_id": clip.clip_id, "row": clip.row,
            "cache_key": clip.cache_key, "tier": clip.tier, "reason": clip.dead_letter_reason,
            "step": clip.nan_step, "retryable": bool(clip.retryable), "recorded_at": recorded_at,
            "gpu_seconds": float(clip.gpu_seconds) if clip.billable else
            float(earlier["gpu_seconds"]) if earlier is not None else 0.0,
            "spec_json": GenerationSpec.from_dict(clip.spec).canonical_json()})
        if clip.retryable:
            continue  # not a safety or reliability event of the clip itself: the model was unavailable
        events.append({
            "partition_key": key, "batch_id": batch_id, "clip_id": clip.clip_id, "row": clip.row,
            "stage": "generation", "check_name": NAN_REASON, "frame_index": None, "label": "nan",
            "score": None, "action": "dead_letter", "policy_version": "nan-guard-v1",
            "detail": f"step={clip.nan_step}", "recorded_at": recorded_at})
    return letters, events


def render_summary(clips: list[ClipRecord]) -> dict[str, Any]:
    """The counts `rendered_clips` reports in its metadata."""
    rendered = [c for c in clips if c.render_status == RenderStatus.RENDERED]
    dead = [c for c in clips if c.render_status == RenderStatus.DEAD_LETTER]
    return {
        "clips": len(clips), "rendered": len(rendered),
        "cache_hits": sum(c.render_status == RenderStatus.CACHE_HIT for c in clips),
        "resumed": sum(bool(c.resumed_from_step) for c in rendered),
        "steps_saved_by_resume": sum(int(c.resumed_from_step or 0) for c in rendered if not c.reused_attempt),
        "reused_from_earlier_attempt": sum(bool(c.reused_attempt) for c in rendered),
        "dead_letters": len(dead),
        "quarantined_earlier": sum(c.render_status == RenderStatus.QUARANTINED for c in clips),
        "gpu_seconds": round(sum(c.gpu_seconds for c in rendered + dead), 3),
    }


def render_table(clips: list[ClipRecord]) -> str:
    """Markdown: the shard's renders and dead letters with steps, resume point and GPU time."""
    lines = ["| clip | status | steps | resumed from | GPU s | s/step |", "|---|---|---|---|---|---|"]
    shown = [c for c in clips if c.render_status == RenderStatus.RENDERED] + \
        [c for c in clips if c.render_status == RenderStatus.DEAD_LETTER]
    for clip in shown:
        mean = clip.step_seconds_mean
        lines.append(f"| {clip.clip_id} | {clip.render_status} | {'' if clip.steps_run is None else clip.steps_run} | "
                     f"{clip.resumed_from_step or 0} | {clip.gpu_seconds:.3f} | "
                     f"{'' if mean is None else f'{mean:.4f}'} |")
    return "\n".join(lines)
