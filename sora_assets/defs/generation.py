"""Generation: render accepted prompts with the diffusers pipeline, or reuse a cached clip."""

from datetime import UTC, datetime
from typing import Any

from dagster import AssetExecutionContext, asset

from sora_assets.core.frames import non_finite_frames, to_uint8
from sora_assets.core.fsutil import atomic_write_bytes
from sora_assets.core.ledger import CACHE_HIT, DUPLICATE, RENDERED
from sora_assets.core.spec import GenerationSpec
from sora_assets.core.video_io import encode_mp4
from sora_assets.defs.partitions import shards_partitions
from sora_assets.resources.home import HomeResource
from sora_assets.resources.store import LocalClipStore
from sora_assets.resources.video_model import VideoModelResource


@asset(partitions_def=shards_partitions, group_name="generation", kinds={"pytorch", "diffusers"}, pool="gpu",
       description="One H.264 MP4 per accepted prompt: rendered, or an exact cache hit at zero GPU-seconds.")
def rendered_clips(context: AssetExecutionContext, validated_prompts: list[dict[str, Any]],
                   video_model: VideoModelResource, store: LocalClipStore,
                   home: HomeResource) -> list[dict[str, Any]]:
    work = home.home.work / context.partition_key
    clips: list[dict[str, Any]] = []
    rendered_keys: dict[str, str] = {}
    for number, row in enumerate(validated_prompts, start=1):
        spec = GenerationSpec.from_dict(row["spec"])
        cache_key = spec.cache_key()
        clip = {**row, "cache_key": cache_key}
        cached = store.lookup(cache_key)
        if cached is not None:
            clip.update(render_status=CACHE_HIT, store_sha256=cached.sha256, gpu_seconds=0.0,
                        steps_run=cached.sidecar.get("steps_run", spec.steps))
        elif cache_key in rendered_keys:
            clip.update(render_status=DUPLICATE, work_path=rendered_keys[cache_key], gpu_seconds=0.0)
        else:
            started = datetime.now(UTC)
            result = video_model.render(spec)
            path = work / f"{cache_key}.mp4"
            atomic_write_bytes(path, encode_mp4(to_uint8(result.frames), spec.fps))
            rendered_keys[cache_key] = str(path)
            clip.update(render_status=RENDERED, work_path=str(path), gpu_seconds=result.gpu_seconds,
                        steps_run=result.steps_run, device=result.device,
                        render_started_at=started.isoformat(),
                        non_finite_frames=non_finite_frames(result.frames),
                        step_seconds_mean=sum(result.step_seconds) / max(1, len(result.step_seconds)),
                        decode_seconds=result.decode_seconds)
            context.log.info(f"[{number}/{len(validated_prompts)}] rendered {clip['clip_id']}: "
                             f"{result.steps_run} steps in {result.gpu_seconds:.2f} s on {result.device}")
        clips.append(clip)
    rendered = [c for c in clips if c["render_status"] == RENDERED]
    context.add_output_metadata({
        "clips": len(clips), "rendered": len(rendered),
        "cache_hits": sum(c["render_status"] == CACHE_HIT for c in clips),
        "gpu_seconds": round(sum(c["gpu_seconds"] for c in rendered), 3),
        "model": video_model.model_id,
    })
    return clips
