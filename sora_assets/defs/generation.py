"""Generation: render accepted prompts with the diffusers pipeline, or reuse a cached clip.

Every attempt at a shard (step retry, re-execution, backfill) picks up where the last one stopped:
clips already encoded in `work/<shard>/` are reused, clips with a step checkpoint resume from it,
and clips whose spec is in the dead-letter table, or that the frame scan quarantined, are not rendered again.
Triage and the queue's failure policy are pure (`core/render/triage.py`, `core/render/queue.py`); the
shard's files go through its work area (`core/storage/work_area.py`); this module wires them to the model.
"""

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from dagster import AssetExecutionContext, Backoff, Failure, Jitter, MetadataValue, RetryPolicy, asset
from PIL import Image

from sora_assets.core.intake.batch_files import batch_id_of_key
from sora_assets.core.quality.frames import frames_sha256, non_finite_frames, to_uint8
from sora_assets.core.render.acceleration import EXACT
from sora_assets.core.render.clip_record import ClipRecord, RenderStatus
from sora_assets.core.render.denoise_batches import group_by_shape
from sora_assets.core.render.failures import Verdict, is_out_of_memory
from sora_assets.core.render.gpu_lock import gpu_lock, gpu_lock_path
from sora_assets.core.render.queue import PermanentRenderError, RenderQueue
from sora_assets.core.render.sequences import shot_order
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.render.spend import billed_seconds
from sora_assets.core.render.triage import (
    NAN_REASON,
    Triage,
    dead_letter_rows,
    render_summary,
    render_table,
    settle_duplicates,
    triage,
)
from sora_assets.core.render.video_io import decode_mp4, encode_mp4
from sora_assets.core.storage.fsutil import sha256_bytes, sha256_file
from sora_assets.core.storage.home import Home
from sora_assets.core.storage.work_area import WorkArea
from sora_assets.defs.catalog import GENERATION, owners_of
from sora_assets.defs.fencing import RunFenced, StepFence
from sora_assets.defs.partitions import GPU_POOL, shards_partitions
from sora_assets.defs.screening import known_quarantine
from sora_assets.defs.validation import input_image_file
from sora_assets.executors import gpu_step_tags
from sora_assets.resources.home import HomeResource
from sora_assets.resources.store import ClipStore
from sora_assets.resources.video_model import (
    LOAD_COUNT,
    PROGRESS_LISTENERS,
    NonFiniteLatentsError,
    RenderJob,
    RenderResult,
    StepProgress,
    VideoModelResource,
    shape_key,
)
from sora_assets.resources.warehouse import ParquetWarehouse


def render_record(result: RenderResult, path: Path, mp4: bytes, started: datetime,
                  gpu_seconds: float | None = None) -> dict[str, Any]:
    """The finished render's fields; `gpu_seconds` is the clip's bill over every attempt (default: this attempt
    plus what its checkpoint says earlier ones spent)."""
    return {
        "render_status": RenderStatus.RENDERED, "work_path": str(path), "mp4_sha256": sha256_bytes(mp4),
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


def conditioning_image(spec: GenerationSpec, clip: ClipRecord, by_key: dict[str, ClipRecord], layout: Home,
                       store: ClipStore) -> tuple[np.ndarray | None, str]:
    """The first frame a conditioned spec names: its input image (checked against the validated hash), or
    the last frame of the shot it continues, decoded from that shot's MP4 (so a fresh render, an earlier
    attempt's file and a cache hit all give the same pixels)."""
    kind, _, ref = (spec.conditioning or "").partition(":")
    if kind == "image":
        try:
            path = input_image_file(str(clip.metadata["image"]), layout, store)
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
        status = source.render_status
        if status == RenderStatus.CACHE_HIT:
            video = store.get(source.store_sha256).path
        elif status == RenderStatus.RENDERED:
            video = Path(source.work_path)
        else:
            return None, f"the shot it continues ({source.clip_id}) is {status or 'not rendered'}"
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


class ShardRenderer:
    """One step's renders of a shard: runs the model, and handles each outcome the render queue reports
    (files through the work area, fields on the clip records, throttled run-log lines)."""

    def __init__(self, context: AssetExecutionContext, fence: StepFence, video_model: VideoModelResource,
                 warehouse: ParquetWarehouse, area: WorkArea, triaged: Triage):
        self.context, self.model, self.warehouse, self.area = context, video_model, warehouse, area
        self.fence = fence  # made at the start of the step: it remembers the coordinator's pid
        self.by_id = {clip.clip_id: clip for clip in triaged.to_render}
        self.clips = triaged.clips
        self.total, self.done, self.last_logged = len(triaged.to_render), 0, 0.0

    def job(self, clip: ClipRecord) -> RenderJob:
        """A clip's render job: resumed from its newest checkpoint that verifies, journalling its spend."""
        spec = GenerationSpec.from_dict(clip.spec)
        checkpoints = self.area.checkpoints(clip.clip_id, self.model.keep_checkpoints)
        resume = checkpoints.latest(clip.cache_key, spec.steps)
        for skipped in checkpoints.rejected:
            self.context.log.warning(f"{clip.clip_id}: ignoring checkpoint {skipped.path.name}: {skipped.reason}")
        spend = self.area.spend_journal(clip.clip_id, self.context.run.run_id,
                                        f"rendered_clips:retry{self.context.retry_number}")
        return RenderJob(spec, clip.clip_id, checkpoints, resume, spend=spend)

    def render(self, group: list[RenderJob]) -> list[RenderResult]:
        self.fence.check("rendering")
        return self.model.render_group(group, progress=[self.on_step, *PROGRESS_LISTENERS],
                                       failpoint_dir=self.area.home.failpoints)

    def on_step(self, event: StepProgress) -> None:
        """A run-log line at each checkpoint, throttled: each line is an event write to the instance. An orphaned
        step (its run over, its coordinator gone) stops here instead of rendering for nobody."""
        self.fence.check_now_and_then("rendering on")
        if event.checkpointed and self._log_due():
            self.context.log.info(f"{', '.join(event.clip_ids)}: step {event.step}/{event.total}, checkpoint saved")

    def _log_due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last_logged >= self.model.progress_log_seconds:
            self.last_logged = now
            return True
        return False

    def rendered(self, job: RenderJob, result: RenderResult, started: datetime) -> None:
        clip = self.by_id[job.clip_id]
        mp4 = encode_mp4(to_uint8(result.frames), job.spec.fps)
        spent = billed_seconds(job.spend.total(clip.cache_key) if job.spend else 0.0, result.total_gpu_seconds)
        record = render_record(result, self.area.video_path(clip.cache_key), mp4, started, spent)  # hashed in memory
        if job.image is not None:
            record["conditioning_sha256"] = sha256_bytes(np.ascontiguousarray(job.image).tobytes())
        self.area.save_render(clip.cache_key, mp4, record)
        clip.update(record)
        self.done += 1
        resumed = f", resumed from step {result.resumed_from_step}" if result.resumed_from_step else ""
        if self._log_due(force=bool(resumed) or self.done == self.total):  # every clip is in the metadata table
            self.context.log.info(f"[{self.done}/{self.total}] rendered {job.clip_id}: {result.steps_run} steps "
                                  f"({result.steps_computed} computed{resumed}) in {result.gpu_seconds:.2f} s "
                                  f"on {result.device}")

    def non_finite(self, job: RenderJob, error: NonFiniteLatentsError, group_size: int, started: datetime) -> None:
        """Dead-lettered, billed, not retried: the same seed would fail again."""
        fallback = error.gpu_seconds / group_size + (job.resume.gpu_seconds if job.resume else 0.0)
        self.by_id[job.clip_id].update(
            render_status=RenderStatus.DEAD_LETTER, billable=True, nan_step=error.step, dead_letter_reason=NAN_REASON,
            gpu_seconds=billed_seconds(job.spend.total(job.spec.cache_key()) if job.spend else 0.0, fallback),
            steps_run=error.step, render_started_at=started.isoformat(), device=self.model.device)
        job.checkpoints.clear()
        self.context.log.error(f"{job.clip_id}: non-finite latents after step {error.step}; dead-lettered, "
                               "not retried (the same seed would fail again)")
        self.done += 1

    def alone(self, job: RenderJob) -> RenderJob:
        """A healthy batch-mate of a NaN clip: on its own, from its own checkpoint if any."""
        return RenderJob(job.spec, job.clip_id, job.checkpoints,
                         job.checkpoints.latest(job.spec.cache_key(), job.spec.steps), job.image, job.spend)

    def failed(self, group: list[RenderJob], error: BaseException, verdict: Verdict) -> None:
        device = self.model._device_and_dtype()[0]  # "auto" resolved: the worker is host plus real device
        record_render_failure(self.warehouse, self.context.partition_key, self.context.run.run_id,
                              self.context.retry_number, device, verdict.reason, verdict.retryable, len(group), error)
        if is_out_of_memory(error) and len(group) > 1:
            self.context.log.warning(f"out of memory denoising {len(group)} clips together; rendering them one by one")

    def no_first_frame(self, clip: ClipRecord, problem: str) -> None:
        clip.update(render_status=RenderStatus.DEAD_LETTER, billable=False, nan_step=0, retryable=True,
                    dead_letter_reason=f"conditioning_unavailable: {problem}"[:500])
        self.context.log.error(f"{clip.clip_id}: no first frame ({problem}); not rendered")
        self.done += 1

    def stop(self, stop: PermanentRenderError) -> Failure:
        """Every clip still waiting becomes a retryable dead letter (the model, not the clip, is broken)."""
        waiting = [job for job in stop.waiting if self.by_id[job.clip_id].render_status is None]
        for job in waiting:
            self.by_id[job.clip_id].update(render_status=RenderStatus.DEAD_LETTER, billable=False, nan_step=0,
                                           dead_letter_reason=f"{stop}"[:500], retryable=True)
        record_dead_letters(self.context, self.warehouse, self.context.partition_key, self.clips)
        return Failure(str(stop), allow_retries=False,
                       metadata={"reason": stop.verdict.reason, "clips_waiting": len(waiting)})


def record_dead_letters(context: AssetExecutionContext, warehouse: ParquetWarehouse, key: str,
                        clips: list[ClipRecord]) -> None:
    """Replace this shard's dead-letter rows and their reliability events (idempotent per partition)."""
    previous = {r["clip_id"]: r for r in warehouse.read("dead_letters", key).to_dict(orient="records")}
    letters, events = dead_letter_rows(clips, previous, key, batch_id_of_key(key), datetime.now(UTC))
    warehouse.write("dead_letters", key, "rendered_clips", letters)
    warehouse.write("safety_events", key, "rendered_clips", events)
    if letters:
        context.log.warning(f"{len(letters)} clip(s) dead-lettered: {', '.join(r['clip_id'] for r in letters)}")


def render_shard(renderer: ShardRenderer, triaged: Triage, store: ClipStore) -> None:
    """Batched clips first, then first-frame clips one at a time in shot order (a continuation reads the shot
    before it from disk). A permanent error fails the step with every waiting clip dead-lettered."""
    jobs = {clip.clip_id: renderer.job(clip) for clip in triaged.to_render}
    queue = RenderQueue(renderer.render, renderer, NonFiniteLatentsError, passthrough=(RunFenced,))
    later = [jobs[c.clip_id] for c in triaged.conditioned]
    by_key = {c.cache_key: c for c in triaged.clips if c.render_status != RenderStatus.DUPLICATE}
    try:
        queue.run(group_by_shape([jobs[c.clip_id] for c in triaged.plain], lambda j: shape_key(j.spec),
                                 renderer.model.batch_size,
                                 alone=lambda j: j.resume is not None or j.spec.preset != EXACT), later)
        for clip in sorted(triaged.conditioned, key=shot_order):
            job = jobs[clip.clip_id]
            job.image, problem = conditioning_image(job.spec, clip, by_key, renderer.area.home, store)
            if job.image is None:
                renderer.no_first_frame(clip, problem)
            else:
                queue.run([[job]], later)
    except PermanentRenderError as stop:
        raise renderer.stop(stop) from stop.error


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
    fence = StepFence(context)
    area = home.work_area(key, store.checkpoint_mirror())
    triaged = triage(validated_prompts, key, store.lookup, known_dead_letters(warehouse), known_quarantine(warehouse),
                     booked=set(warehouse.read("cost_ledger", key).clip_id), finished=area.finished_render)
    try:
        # with two workers on one GPU ($SORA_ASSETS_GPU_LOCK), only the render holds it: this step's reads before
        # and its writes after overlap the other worker's render; a shard of cache hits never waits for it
        with gpu_lock(gpu_lock_path() if triaged.to_render else None) as gpu:
            render_shard(ShardRenderer(context, fence, video_model, warehouse, area, triaged), triaged, store)
    finally:  # the step's renders and spend records, durable before any output or retry names them
        area.make_durable()
    settle_duplicates(triaged)
    fence.check("writing dead letters or the step's output")
    record_dead_letters(context, warehouse, key, triaged.clips)
    context.add_output_metadata({
        **render_summary(triaged.clips), "batch_size": video_model.batch_size,
        # every model the shard's clips name (a mixed shard renders Wan and LTX-Video rows)
        "model": ", ".join(sorted({c.spec["model_id"] for c in triaged.clips})) or video_model.model_id,
        # pipelines this process has loaded so far: stays 1 across the runs of a warm worker
        "pipeline_loads_in_process": LOAD_COUNT["loads"], "process_id": os.getpid(),
        **({"gpu_lock": gpu.path, "gpu_lock_wait_s": round(gpu.waited_s, 3), "gpu_held_from": gpu.acquired_at,
            "gpu_held_until": gpu.released_at} if gpu.acquired_at is not None else {}),
        "renders": MetadataValue.md(render_table(triaged.clips))})
    return triaged.clips
