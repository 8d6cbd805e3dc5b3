"""Kill a 50-step render after step 48 with a real SIGKILL, then resume it.

Prints the steps re-run with step checkpoints (every 10 steps) and without, and whether the resumed
clip is bit-identical to an uninterrupted render. Also times the checkpointing itself.

    python bench/resume.py [--steps 50] [--kill-after 48] [--every 10] [--size 64] [--frames 9]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sora_assets.core.quality.frames import frames_sha256
from sora_assets.core.render.checkpoints import ClipCheckpoints
from sora_assets.core.render.failpoints import ENV_VAR
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.video_model import VideoModelResource


def make_spec(model: VideoModelResource, steps: int, size: int, frames: int) -> GenerationSpec:
    profile = model.profile()
    return GenerationSpec(prompt="a drone shot over snowy mountains at dawn", negative_prompt="",
                          model_id=profile.model_id, model_revision=profile.revision, seed=2026, steps=steps,
                          width=size, height=size, num_frames=frames, fps=8, guidance_scale=5.0,
                          scheduler=profile.scheduler)


def worker(args: argparse.Namespace) -> None:
    """One render in this process (killed by the failpoint, or resuming); prints a JSON summary."""
    model = VideoModelResource(model_path=args.model, checkpoint_every=args.every)
    spec = make_spec(model, args.steps, args.size, args.frames)
    checkpoints = ClipCheckpoints(Path(args.root), "bench-s000", "bench-r00000")
    result = model.render(spec, "bench-r00000", checkpoints, failpoint_dir=Path(args.root) / "marks")
    print(json.dumps({"resumed_from_step": result.resumed_from_step, "steps_computed": result.steps_computed,
                      "seconds": result.gpu_seconds, "frames_sha256": frames_sha256(result.frames)}))


def run_worker(args: argparse.Namespace, root: Path, every: int, kill_after: int | None) -> dict | int:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if kill_after is not None:
        env[ENV_VAR] = f"generate.after_step={kill_after}:kill"
    command = [sys.executable, __file__, "--worker", "--model", args.model, "--root", str(root),
               "--every", str(every), "--steps", str(args.steps), "--size", str(args.size),
               "--frames", str(args.frames)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return done.returncode
    return json.loads(done.stdout.strip().splitlines()[-1])


def scenario(args: argparse.Namespace, every: int, reference_sha: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        root = Path(tmp)
        code = run_worker(args, root, every, args.kill_after)
        assert code == -9, f"expected SIGKILL (-9), got {code}"
        resumed = run_worker(args, root, every, None)
        assert isinstance(resumed, dict), f"resume failed with exit code {resumed}"
    computed_before_kill = args.kill_after
    rerun = computed_before_kill - resumed["resumed_from_step"]
    return {"checkpoint_every": every, "killed_by": "SIGKILL (-9)", "resumed_from_step": resumed["resumed_from_step"],
            "steps_rerun": rerun, "steps_computed_after_kill": resumed["steps_computed"],
            "bit_identical": resumed["frames_sha256"] == reference_sha}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help="diffusers folder (default: a fresh tiny model)")
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--kill-after", type=int, default=48)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=9)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="bench-model-") as models:
        if args.model is None:
            from sora_assets.resources.tiny_wan import build_tiny_wan

            args.model = str(build_tiny_wan(Path(models) / "tiny-wan"))
        reference = run_worker(args, Path(models) / "reference", 0, None)
        assert isinstance(reference, dict), f"reference render failed with exit code {reference}"
        with_ckpt = scenario(args, args.every, reference["frames_sha256"])
        without = scenario(args, 0, reference["frames_sha256"])

        # the cost of checkpointing itself, in one process: same render with and without
        model = VideoModelResource(model_path=args.model, checkpoint_every=args.every)
        spec = make_spec(model, args.steps, args.size, args.frames)
        model.render(spec)  # warm-up (load, first-call allocations)
        timings = {"off": [], "on": []}
        for _ in range(3):
            for mode in ("off", "on"):
                with tempfile.TemporaryDirectory() as tmp:
                    ckpt = ClipCheckpoints(Path(tmp), "s", "c") if mode == "on" else None
                    started = time.perf_counter()
                    model.render(spec, "c", ckpt)
                    timings[mode].append(time.perf_counter() - started)
        best_off, best_on = min(timings["off"]), min(timings["on"])

    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"render: {args.steps} steps, {args.frames}x{args.size}x{args.size}, killed after step {args.kill_after}")
    print(f"{'':26}{'with checkpoints':>18}{'without':>10}")
    print(f"{'checkpoint every':26}{with_ckpt['checkpoint_every']:>18}{'-':>10}")
    print(f"{'resumed from step':26}{with_ckpt['resumed_from_step']:>18}{without['resumed_from_step']:>10}")
    print(f"{'steps re-run':26}{with_ckpt['steps_rerun']:>18}{without['steps_rerun']:>10}")
    print(f"{'bit-identical to clean':26}{str(with_ckpt['bit_identical']):>18}{str(without['bit_identical']):>10}")
    print(f"checkpoint overhead: {best_on:.3f} s vs {best_off:.3f} s per render "
          f"(ratio {best_on / best_off:.3f}, best of 3)")
    if not (with_ckpt["bit_identical"] and without["bit_identical"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
