"""Generation: render accepted prompts with the diffusers pipeline, or reuse a cached clip.

Every attempt at a shard (step retry, re-execution, backfill) picks up where the last one stopped:
clips already encoded in `work/<shard>/` are reused, clips with a step checkpoint resume from it,
and clips whose spec is in the dead-letter table, or that the frame scan quarantined, are not rendered again.
"""

import json
import os
import socket
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from dagster import AssetExecutionContext, Backoff, Failure, Jitter, MetadataValue, RetryPolicy, asset
from PIL import Image

from sora_assets.core.acceleration import EXACT
from sora_assets.core.batch import batch_id_of_key
from sora_assets.core.batching import group_by_shape
from sora_assets.core.checkpoints import ClipCheckpoints
from sora_assets.core.clip_record import ClipRecord
from sora_assets.core.failures import classify, is_out_of_memory
from sora_assets.core.frames import frames_sha256, non_finite_frames, to_uint8
from sora_assets.core.fsutil import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file
from sora_assets.core.home import Home
from sora_assets.core.ledger import CACHE_HIT, DEAD_LETTER, DUPLICATE, QUARANTINED, RENDERED
from sora_assets.core.sequences import shot_order
from sora_assets.core.spec import GenerationSpec
from sora_assets.core.spend import SpendJournal, billed_seconds
from sora_assets.core.video_io import decode_mp4, encode_mp4
from sora_assets.defs.catalog import GENERATION, owners_of
from sora_assets.defs.fencing import RunFenced, StepFence
from sora_assets.defs.partitions import GPU_POOL, shards_partitions
from sora_assets.defs.screening import known_quarantine
from sora_assets.defs.validation import input_image_file
from sora_assets.executors import gpu_step_tags
from sora_assets.resources.home import HomeResource
from sora_assets.resources.store import ClipStore
from sora_assets.resources.video_model import (
    NonFiniteLatentsError,
    RenderJob,
    RenderResult,
    StepProgress,
    VideoModelResource,
    shape_key,
)
from sora_assets.resources.warehouse import ParquetWarehouse

NAN_REASON = "non_finite_latents"


def finished_render(work: Path, cache_key: str) -> dict[str, Any] | None:
    """A render an earlier attempt completed: its record, if the MP4 it describes is intact."""
    record_path = work / f"{cache_key}.render.json"
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: render again rather than trust it
    video = Path(record.get("work_path", ""))
    if not video.exists() or sha256_file(video) != record.get("mp4_sha256"):
        return None
    return record


def render_record(result: RenderResult, path: Path, mp4: bytes, started: datetime,
                  gpu_seconds: float | None = None) -> dict[str, Any]:
    """The finished render's fields; `gpu_seconds` is the clip's bill over every attempt (default: this attempt
    plus what its checkpoint says earlier ones spent)."""
    return {
        "render_status": RENDERED, "work_path": str(path), "mp4_sha256": sha256_bytes(mp4),
        "gpu_seconds": result.total_gpu_seconds if gpu_seconds is None else gpu_seconds,
        "attempt_gpu_seconds": result.gpu_seconds,
        "steps_run": result.steps_run, "steps_computed": result.steps_computed,
        "resumed_from_step": result.resumed_from_step, "device": result.device,
        "render_started_at": started.isoformat(), "non_finite_frames": non_finite_frames(result.frames),
        "frames_sha256": frames_sha256(result.frames), "step_seconds": result.step_seconds,
        "step_seconds_mean": sum(result.step_seconds) / max(1, len(result.step_seconds)),
        "decode_seconds": result.decode_seconds, "batch_size": result.batch_size,
        "checkpoints_written": result.checkpoints_written,
    }


def known_dead_letters(warehouse: ParquetWarehouse) -> dict[str, dict[str, Any]]:
    """Non-retryable dead letters in any shard, by cache key: a deterministic NaN is not rendered twice.

    Retryable ones (the model folder was broken) render again once the cause is fixed.
    """
    frame = warehouse.read("dead_letters")
    return {row["cache_key"]: row for row in frame.to_dict(orient="records") if not row["retryable"]}


def quarantined_clip(record: dict[str, Any], key: str) -> dict[str, Any]:
    """A clip the frame scan blocked in an earlier attempt: its verdict, frames hash and spend, not a render.

    Billable only in the shard that rendered it (its spend is booked once, there, however often it is asked for).
    """
    own = record["partition_key"] == key
    record = {k: None if isinstance(v, float) and v != v else v for k, v in record.items()}  # NaN from Parquet
    return {"render_status": QUARANTINED, "billable": own, "quarantined_from": record["partition_key"],
            "gpu_seconds": float(record["gpu_seconds"] or 0.0) if own else 0.0, "scan_verdict": "block",
            "scan_reasons": [r for r in str(record["reasons"] or "").split(",") if r], "frames_scanned": 0,
            "policy_version": record["policy_version"], "frames_sha256": record["frames_sha256"],
            "steps_run": record["steps_run"], "device": record["device"],
            "render_started_at": record["render_started_at"], "quarantine_path": record["quarantine_path"]}


QUARANTINE_FIELDS = tuple(quarantined_clip({"partition_key": "", "gpu_seconds": 0.0, "reasons": "",
                                            "policy_version": None, "frames_sha256": None, "steps_run": None,
                                            "device": None, "render_started_at": None, "quarantine_path": None},
                                           "").keys())


def conditioning_image(spec: GenerationSpec, clip: dict[str, Any], by_key: dict[str, dict[str, Any]], layout: Home,
                       store: ClipStore) -> tuple[np.ndarray | None, str]:
    """The first frame a conditioned spec names: its input image (checked against the validated hash), or
    the last frame of the shot it continues, decoded from that shot's MP4 (so a fresh render, an earlier
    attempt's file and a cache hit all give the same pixels)."""
    kind, _, ref = (spec.conditioning or "").partition(":")
    if kind == "image":
        try:
            path = input_image_file(str(clip["metadata"]["image"]), layout, store)
            if sha256_file(path) != ref:
                return None, f"{path.name} changed after validation"
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB")), ""
        except (OSError, ValueError, KeyError) as exc:
            return None, f"input image unreadable: {exc}"
    if kind == "last_frame":
        source = by_key.get(ref)
        if source is None:
            return None, "the shot it continues is not in this shard"
        status = source.get("render_status")
        if status == CACHE_HIT:
            video = store.get(source["store_sha256"]).path
        elif status == RENDERED:
            video = Path(source["work_path"])
        else:
            return None, f"the shot it continues ({source['clip_id']}) is {status or 'not rendered'}"
        return decode_mp4(video)[-1], ""
    return None, f"unknown conditioning {spec.conditioning!r}"


def worker_name(device: str) -> str:
    """The GPU worker a render ran on: host plus device (what the worker-failures alarm counts by)."""
    return f"{socket.gethostname()}/{device}"


def record_render_failure(warehouse: ParquetWarehouse, key: str, run_id: str, retry_number: int, device: str,
                          reason: str, retryable: bool, clips: int, error: BaseException,
                          now: datetime | None = None) -> None:
    """One `render_failures` row per render attempt that raised (its own file: attempts never overwrite)."""
    now = now or datetime.now(UTC)
    warehouse.write("render_failures", key, f"{run_id[:12]}-r{retry_number}-{now:%Y%m%dT%H%M%S%f}", [{
        "partition_key": key, "batch_id": batch_id_of_key(key), "run_id": run_id, "retry_number": retry_number,
        "worker": worker_name(device), "device": device, "reason": reason, "retryable": retryable, "clips": clips,
        "error": f"{type(error).__name__}: {error}"[:500], "recorded_at": now}])


def jobs_left(queue: deque[list[RenderJob]], current: list[RenderJob]) -> list[RenderJob]:
    return current + [job for group in queue for job in group]


@asset(partitions_def=shards_partitions, group_name=GENERATION, owners=owners_of(GENERATION),
       kinds={"pytorch", "diffusers"}, pool=GPU_POOL,
       op_tags=gpu_step_tags(os.environ),  # with the Celery executor: the GPU workers' queue
       # transient failures (a killed worker, OOM, I/O) retry with backoff; permanent ones raise
       # Failure(allow_retries=False) and deterministic NaNs never reach here (they are dead letters)
       retry_policy=RetryPolicy(max_retries=2, delay=1, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS),
       description="One H.264 MP4 per accepted prompt: rendered (resuming from step checkpoints), an exact "
                   "cache hit at zero GPU-seconds, or a dead letter when the latents went non-finite.")
def rendered_clips(context: AssetExecutionContext, validated_prompts: list[dict[str, Any]],
                   video_model: VideoModelResource, store: ClipStore, warehouse: ParquetWarehouse,
                   home: HomeResource) -> list[ClipRecord]:
    key = context.partition_key
    batch_id = batch_id_of_key(key)
    fence = StepFence(context)
    layout = home.home
    work = layout.work / key
    dead = known_dead_letters(warehouse)
    blocked = known_quarantine(warehouse)
    booked = set(warehouse.read("cost_ledger", key).clip_id)  # clips this shard's ledger already holds
    clips: list[ClipRecord] = []
    first_of: dict[str, ClipRecord] = {}  # cache key -> the clip of this shard that renders it
    jobs: list[tuple[dict[str, Any], RenderJob]] = []
    conditioned: list[tuple[dict[str, Any], RenderJob]] = []  # need a first frame: rendered after the others
    for row in validated_prompts:
        spec = GenerationSpec.from_dict(row["spec"])
        cache_key = spec.cache_key()
        clip = ClipRecord.from_dict({**row, "cache_key": cache_key, "gpu_seconds": 0.0})
        clips.append(clip)
        cached = store.lookup(cache_key)
        if cached is not None:
            clip.update(render_status=CACHE_HIT, store_sha256=cached.sha256,
                        steps_run=cached.sidecar.get("steps_run", spec.steps),
                        frames_sha256=cached.sidecar.get("frames_sha256"))
            if cached.sidecar.get("partition_key") == key and cached.sidecar.get("clip_id") == clip["clip_id"] \
                    and clip["clip_id"] not in booked:
                # this shard's own render, stored by an attempt that died before the ledger: still its spend
                clip.update(own_publish=True, gpu_seconds=float(cached.sidecar.get("gpu_seconds") or 0.0),
                            device=cached.sidecar.get("device"), resumed_from_step=cached.sidecar.get(
                                "resumed_from_step", 0), render_started_at=cached.sidecar.get("published_at"))
        elif cache_key in dead:
            earlier = dead[cache_key]
            clip.update(render_status=DEAD_LETTER, billable=False, nan_step=int(earlier["step"]),
                        dead_letter_reason=earlier["reason"], dead_letter_recorded_at=earlier["recorded_at"],
                        dead_letter_from=earlier["partition_key"])
        elif cache_key in first_of:
            clip.update(render_status=DUPLICATE, duplicate_of=first_of[cache_key]["clip_id"])
        elif cache_key in blocked:  # the frame scan blocked this spec before: a terminal, remembered outcome
            first_of[cache_key] = clip
            clip.update(quarantined_clip(blocked[cache_key], key))
        elif (record := finished_render(work, cache_key)) is not None:
            first_of[cache_key] = clip
            clip.update(record, reused_attempt=True)
        else:
            first_of[cache_key] = clip
            checkpoints = ClipCheckpoints(layout.checkpoints, key, clip["clip_id"], video_model.keep_checkpoints,
                                          mirror=store.checkpoint_mirror())
            resume = checkpoints.latest(cache_key, spec.steps)
            for skipped in checkpoints.rejected:
                context.log.warning(f"{clip['clip_id']}: ignoring checkpoint {skipped.path.name}: {skipped.reason}")
            spend = SpendJournal(layout.work, key, clip["clip_id"], context.run.run_id,
                                 f"rendered_clips:retry{context.retry_number}")
            job = RenderJob(spec, clip["clip_id"], checkpoints, resume, spend=spend)
            (conditioned if spec.conditioning else jobs).append((clip, job))

    last_logged = {"at": 0.0}

    def log_progress(event: StepProgress) -> None:
        """A run-log line at each checkpoint, throttled: each line is an event write to the instance. An orphaned
        step (its run over, its coordinator gone) stops here instead of rendering for nobody."""
        fence.check_now_and_then("rendering on")
        now = time.monotonic()
        if event.checkpointed and now - last_logged["at"] >= video_model.progress_log_seconds:
            last_logged["at"] = now
            context.log.info(f"{', '.join(event.clip_ids)}: step {event.step}/{event.total}, checkpoint saved")

    by_id = {clip["clip_id"]: clip for clip, _ in jobs + conditioned}
    total = len(jobs) + len(conditioned)
    progress = {"done": 0}

    def render_queue(queue: deque[list[RenderJob]]) -> None:
        """Render groups in order; NaN clips become dead letters, permanent errors fail the step."""
        while queue:
            _render_next(queue)

    def _render_next(queue: deque[list[RenderJob]]) -> None:
        group = queue.popleft()
        fence.check("rendering")
        started = datetime.now(UTC)
        try:
            results = video_model.render_group(group, progress=log_progress, failpoint_dir=layout.failpoints)
        except RunFenced:
            raise  # not a render failure: nothing is recorded by a fenced step
        except NonFiniteLatentsError as error:
            for job in group:
                if job.clip_id in error.clip_ids:
                    by_id[job.clip_id].update(
                        render_status=DEAD_LETTER, billable=True, nan_step=error.step, dead_letter_reason=NAN_REASON,
                        gpu_seconds=billed_seconds(job.spend.total(job.spec.cache_key()) if job.spend else 0.0,
                                                   error.gpu_seconds / len(group)
                                                   + (job.resume.gpu_seconds if job.resume else 0.0)),
                        steps_run=error.step, render_started_at=started.isoformat(), device=video_model.device)
                    job.checkpoints.clear()
                    context.log.error(f"{job.clip_id}: non-finite latents after step {error.step}; dead-lettered, "
                                      "not retried (the same seed would fail again)")
                    progress["done"] += 1
                else:  # a healthy batch-mate: render it on its own, from its own checkpoint if any
                    queue.append([RenderJob(job.spec, job.clip_id, job.checkpoints,
                                            job.checkpoints.latest(job.spec.cache_key(), job.spec.steps), job.image,
                                            job.spend)])
            return
        except Exception as error:  # noqa: BLE001 - classified: split, fail permanently, or let Dagster retry
            verdict = classify(error)
            device = video_model._device_and_dtype()[0]  # "auto" resolved: the worker is host plus real device
            record_render_failure(warehouse, key, context.run.run_id, context.retry_number, device,
                                  verdict.reason, verdict.retryable, len(group), error)
            if is_out_of_memory(error) and len(group) > 1:
                context.log.warning(f"out of memory denoising {len(group)} clips together; rendering them one by one")
                queue.extendleft(reversed([[job] for job in group]))
                return
            if not verdict.retryable:
                waiting = jobs_left(queue, group) + [job for clip, job in conditioned
                                                     if clip.get("render_status") is None and job not in group]
                for job in waiting:
                    by_id[job.clip_id].update(render_status=DEAD_LETTER, billable=False, nan_step=0,
                                              dead_letter_reason=f"{verdict.reason}: {error}"[:500], retryable=True)
                _record_dead_letters(context, warehouse, key, batch_id, clips)
                raise Failure(f"{verdict.reason}: {error}", allow_retries=False,
                              metadata={"reason": verdict.reason, "clips_waiting": len(waiting)}) from error
            raise  # transient: the step's RetryPolicy retries with backoff, resuming from checkpoints
        for job, result in zip(group, results, strict=True):
            clip = by_id[job.clip_id]
            path = work / f"{clip['cache_key']}.mp4"
            mp4 = encode_mp4(to_uint8(result.frames), job.spec.fps)
            atomic_write_bytes(path, mp4)
            spent = billed_seconds(job.spend.total(clip["cache_key"]) if job.spend else 0.0, result.total_gpu_seconds)
            record = render_record(result, path, mp4, started, spent)  # hashed in memory, not read back
            if job.image is not None:
                record["conditioning_sha256"] = sha256_bytes(np.ascontiguousarray(job.image).tobytes())
            atomic_write_json(work / f"{clip['cache_key']}.render.json", record)  # last: marks the render done
            clip.update(record)
            progress["done"] += 1
            done = progress["done"]
            resumed = f", resumed from step {result.resumed_from_step}" if result.resumed_from_step else ""
            now = time.monotonic()
            if resumed or done == total or now - last_logged["at"] >= video_model.progress_log_seconds:
                last_logged["at"] = now  # throttled like step progress; every clip is in the metadata table
                context.log.info(f"[{done}/{total}] rendered {job.clip_id}: {result.steps_run} steps "
                                 f"({result.steps_computed} computed{resumed}) in {result.gpu_seconds:.2f} s "
                                 f"on {result.device}")

    render_queue(deque(group_by_shape([job for _, job in jobs], lambda j: shape_key(j.spec), video_model.batch_size,
                                      alone=lambda j: j.resume is not None or j.spec.preset != EXACT)))
    # first-frame clips one at a time, in shot order: a continuation reads the shot before it from disk
    by_key = {clip["cache_key"]: clip for clip in clips if clip.get("render_status") != DUPLICATE}
    for clip, job in sorted(conditioned, key=lambda pair: shot_order(pair[0])):
        image, problem = conditioning_image(job.spec, clip, by_key, layout, store)
        if image is None:
            clip.update(render_status=DEAD_LETTER, billable=False, nan_step=0, retryable=True,
                        dead_letter_reason=f"conditioning_unavailable: {problem}"[:500])
            context.log.error(f"{clip['clip_id']}: no first frame ({problem}); not rendered")
            progress["done"] += 1
            continue
        job.image = image
        render_queue(deque([[job]]))

    for clip in clips:  # duplicates follow the clip that rendered their spec
        if clip["render_status"] == DUPLICATE:
            source = first_of[clip["cache_key"]]
            if source["render_status"] == DEAD_LETTER:
                clip.update(render_status=DEAD_LETTER, billable=False, nan_step=source["nan_step"],
                            dead_letter_reason=source["dead_letter_reason"])
            elif source["render_status"] == QUARANTINED:
                clip.update({k: source.get(k) for k in QUARANTINE_FIELDS}, billable=False, gpu_seconds=0.0)
            else:
                clip.update(work_path=source["work_path"], steps_run=source["steps_run"],
                            frames_sha256=source.get("frames_sha256"))
    fence.check("writing dead letters or the step's output")
    _record_dead_letters(context, warehouse, key, batch_id, clips)

    rendered = [c for c in clips if c["render_status"] == RENDERED]
    dead_letters = [c for c in clips if c["render_status"] == DEAD_LETTER]
    context.add_output_metadata({
        "clips": len(clips), "rendered": len(rendered),
        "cache_hits": sum(c["render_status"] == CACHE_HIT for c in clips),
        "resumed": sum(bool(c.get("resumed_from_step")) for c in rendered),
        "steps_saved_by_resume": sum(int(c.get("resumed_from_step") or 0) for c in rendered
                                     if not c.get("reused_attempt")),
        "reused_from_earlier_attempt": sum(bool(c.get("reused_attempt")) for c in rendered),
        "dead_letters": len(dead_letters),
        "quarantined_earlier": sum(c["render_status"] == QUARANTINED for c in clips),
        "gpu_seconds": round(sum(c["gpu_seconds"] for c in rendered + dead_letters), 3),
        "model": video_model.model_id, "batch_size": video_model.batch_size,
        "renders": MetadataValue.md(_render_table(rendered + dead_letters)),
    })
    return clips


def _render_table(clips: list[dict[str, Any]]) -> str:
    lines = ["| clip | status | steps | resumed from | GPU s | s/step |", "|---|---|---|---|---|---|"]
    for clip in clips:
        mean = clip.get("step_seconds_mean")
        lines.append(f"| {clip['clip_id']} | {clip['render_status']} | {clip.get('steps_run', '')} | "
                     f"{clip.get('resumed_from_step') or 0} | {clip['gpu_seconds']:.3f} | "
                     f"{'' if mean is None else f'{mean:.4f}'} |")
    return "\n".join(lines)


def _record_dead_letters(context: AssetExecutionContext, warehouse: ParquetWarehouse, key: str, batch_id: str,
                         clips: list[dict[str, Any]]) -> None:
    """Replace this shard's dead-letter rows and their reliability events (idempotent per partition)."""
    previous = {r["clip_id"]: r for r in warehouse.read("dead_letters", key).to_dict(orient="records")}
    now = datetime.now(UTC)
    letters, events = [], []
    for clip in clips:
        if clip["render_status"] != DEAD_LETTER:
            continue
        earlier = previous.get(clip["clip_id"])
        recorded_at = earlier["recorded_at"] if earlier is not None and not clip.get("billable") else now
        letters.append({
            "partition_key": key, "batch_id": batch_id, "clip_id": clip["clip_id"], "row": clip["row"],
            "cache_key": clip["cache_key"], "tier": clip["tier"], "reason": clip["dead_letter_reason"],
            "step": clip["nan_step"], "retryable": bool(clip.get("retryable")), "recorded_at": recorded_at,
            "gpu_seconds": float(clip["gpu_seconds"]) if clip.get("billable") else
            float(earlier["gpu_seconds"]) if earlier is not None else 0.0,
            "spec_json": GenerationSpec.from_dict(clip["spec"]).canonical_json()})
        if clip.get("retryable"):
            continue  # not a safety or reliability event of the clip itself: the model was unavailable
        events.append({
            "partition_key": key, "batch_id": batch_id, "clip_id": clip["clip_id"], "row": clip["row"],
            "stage": "generation", "check_name": NAN_REASON, "frame_index": None, "label": "nan",
            "score": None, "action": "dead_letter", "policy_version": "nan-guard-v1",
            "detail": f"step={clip['nan_step']}", "recorded_at": recorded_at})
    warehouse.write("dead_letters", key, "rendered_clips", letters)
    warehouse.write("safety_events", key, "rendered_clips", events)
    if letters:
        context.log.warning(f"{len(letters)} clip(s) dead-lettered: {', '.join(r['clip_id'] for r in letters)}")
