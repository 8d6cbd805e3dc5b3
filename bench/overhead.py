"""What `rendered_clips` adds over a bare loop on the same diffusers pipeline.

One run, one process, one loaded pipeline: a 32-clip shard is rendered by a bare
`pipe(...)` loop and by materialising `rendered_clips` in process (cache lookups, step checkpoints,
NaN guard, step timing, MP4 encoding, Dagster step and IO manager). Model load is excluded: the
pipeline is loaded and warmed before either is timed. The bare loop runs before and after the
pipeline and the mean is the baseline. Prints the per-clip overhead ratio (target: under 1.10).

    python bench/overhead.py [--clips 32] [--steps 50] [--size 64] [--frames 9]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

PROMPTS = ["a cat walking on a beach at sunset", "a drone shot over snowy mountains at dawn",
           "a city street at night with neon lights and rain", "a red fox running through a forest",
           "slow motion waves crashing on rocks", "a chef cooking in a busy kitchen",
           "timelapse of clouds over a desert", "an astronaut floating inside a space station"]

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def bare_loop(pipe, specs) -> tuple[float, list[str]]:  # noqa: ANN001 - any diffusers pipeline
    """The baseline: the plainest correct use of the pipeline, same arguments as ours."""
    import torch

    from sora_assets.core.frames import frames_sha256

    digests = []
    started = time.perf_counter()
    for spec in specs:
        generator = torch.Generator(device="cpu").manual_seed(spec.seed)
        out = pipe(prompt=spec.prompt, negative_prompt=spec.negative_prompt or None, height=spec.height,
                   width=spec.width, num_frames=spec.num_frames, num_inference_steps=spec.steps,
                   guidance_scale=spec.guidance_scale, generator=generator, output_type="np")
        digests.append(frames_sha256(out.frames[0]))
    return time.perf_counter() - started, digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--model", default=None, help="diffusers folder (default: the tiny model, built once)")
    args = parser.parse_args()

    from dagster import materialize

    from sora_assets.core.batch import batch_id_for
    from sora_assets.core.home import Home
    from sora_assets.core.spec import GenerationSpec
    from sora_assets.definitions import SHARD_ASSETS
    from sora_assets.resources.home import default_resources
    from sora_assets.resources.video_model import VideoModelResource
    from sora_assets.runner import batch_shard_keys, open_instance, submit_file, tick_inbox

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        home = Home.from_env(Path(tmp) / "home").ensure()
        if args.model:
            shutil.copytree(args.model, home.default_model_path)
        rows = [{"prompt": f"{PROMPTS[i % len(PROMPTS)]}, take {i}", "tier": "paid", "steps": args.steps,
                 "width": args.size, "height": args.size, "num_frames": args.frames, "seed": 1000 + i}
                for i in range(args.clips)]
        batch = Path(tmp) / "overhead.jsonl"
        batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
        submit_file(home, batch)
        instance = open_instance(home)
        tick_inbox(home, instance, shard_size=max(64, args.clips))
        (key,) = batch_shard_keys(home, batch_id_for(batch.name, batch.read_bytes()))
        resources = default_resources(home, shard_size=max(64, args.clips))
        model: VideoModelResource = resources["video_model"]

        # upstream once (not timed), then load and warm the pipeline shared by both sides
        upstream = materialize(SHARD_ASSETS, selection=["prompt_shards", "validated_prompts"], partition_key=key,
                               instance=instance, resources=resources, run_config=QUIET)
        assert upstream.success
        accepted = upstream.output_for_node("validated_prompts")
        specs = [GenerationSpec.from_dict(row["spec"]) for row in accepted]
        assert len(specs) == args.clips, f"{len(specs)} of {args.clips} rows accepted"
        pipe = model.pipeline()
        bare_loop(pipe, specs[:1])

        bare_before, digests = bare_loop(pipe, specs)
        started = time.perf_counter()
        result = materialize(SHARD_ASSETS, selection=["rendered_clips"], partition_key=key, instance=instance,
                             resources=resources, run_config=QUIET)
        pipeline_seconds = time.perf_counter() - started
        assert result.success
        bare_after, _ = bare_loop(pipe, specs)
        clips = result.output_for_node("rendered_clips")
        identical = [c["frames_sha256"] for c in clips] == digests

    baseline = (bare_before + bare_after) / 2
    per_clip_bare = baseline / args.clips
    per_clip_pipeline = pipeline_seconds / args.clips
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}")
    print(f"shard: {args.clips} clips, {args.steps} steps, {args.frames}x{args.size}x{args.size}, model load excluded")
    print(f"bare diffusers loop: {baseline:.2f} s ({bare_before:.2f} before, {bare_after:.2f} after), "
          f"{per_clip_bare * 1000:.1f} ms/clip")
    print(f"rendered_clips materialisation: {pipeline_seconds:.2f} s, {per_clip_pipeline * 1000:.1f} ms/clip")
    print(f"overhead ratio: {pipeline_seconds / baseline:.3f} (target < 1.10); "
          f"frames identical to the bare loop: {identical}")


if __name__ == "__main__":
    main()
