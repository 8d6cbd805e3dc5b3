"""The device check behind bench/gpu_check.sh: a real-size Wan folder rendered bare, through the pipeline, and
with every acceleration preset, in one process, same prompts and seeds.

- bare: `pipe(...)` on the pipeline `VideoModelResource` loaded (no callback, no hooks), timed with a device sync;
- pipeline: `VideoModelResource.render` (step callback, NaN guard, checkpoints, step timing), exact;
- each preset: the same render with the preset's diffusers cache hook on.

Prints load time and peak memory, seconds per clip and per denoising step, pipeline / bare, each preset's
speed-up and PSNR/SSIM against exact, and whether the pipeline's exact frames equal the bare loop's. One
untimed warm-up render (1 step) comes first. With `--json PATH` the figures are also written as JSON.
Random weights: the speed-ups show the hooks' mechanism and overhead at this size, not a trained model's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a Wan folder (built there when it has no model_index.json); default: the cached build")
    parser.add_argument("--cache", type=Path, default=Path(".cache/gpu-check"),
                        help="where the random-weight build is kept between runs, keyed by build_wan13b.build_key")
    parser.add_argument("--layers", type=int, default=30, help="transformer layers of the build (published: 30)")
    parser.add_argument("--text-layers", type=int, default=2, help="text encoder layers of the build")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="auto",
                        help="auto (bf16 on CUDA; on CPU bf16 where oneDNN has bf16 kernels, else fp32) | bfloat16 "
                             "| float32")
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--presets", default="all", help="comma-separated preset names, or all")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--guidance", type=float, default=5.0, help="CFG scale (1.0: no CFG, half the forwards)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed 1-step warm-up render")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--require-identical", action="store_true",
                        help="exit 1 unless the pipeline's exact frames equal the bare loop's (CPU: deterministic)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from build_wan13b import build, build_cached  # this folder: the script's own directory is on sys.path

    from sora_assets.core.quality.fidelity import clip_psnr, clip_ssim
    from sora_assets.core.render import acceleration
    from sora_assets.resources.video_model import VideoModelResource
    from sora_assets.services.calibration import calibration_prompts, calibration_specs

    cpu_s: dict[str, float] = {}  # CPU seconds (all threads) per stage: wall time says little on a shared machine

    def mark(stage: str) -> None:
        cpu_s[stage] = time.process_time() - sum(cpu_s.values())

    mark("startup")  # the interpreter and the imports
    names = [n for n in acceleration.PRESETS if n != acceleration.EXACT] if args.presets == "all" \
        else [acceleration.get_preset(n).name for n in args.presets.split(",") if n.strip()]
    cuda = args.device.startswith("cuda")
    dtype = args.dtype
    if dtype == "auto" and not cuda:
        # bf16 is the published checkpoint's and the GPU mode's dtype; with AVX512-BF16 it is also ~4x faster
        # than fp32 here (a 1.3B forward at 64x64x9: ~4 s against 11 s; the VAE decode 3 s against 19 s) and
        # needs no fp32 copy of the weights. Without bf16 kernels (no AVX512-BF16/AMX) bf16 is far slower than fp32.
        dtype = "bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    # build in this process: one interpreter and one torch/diffusers import instead of two
    build_device = "cuda" if cuda else "cpu"
    started = time.perf_counter()
    if args.model is None:
        model_dir, built_s = build_cached(args.cache, args.layers, args.text_layers, build_device)
    elif not (args.model / "model_index.json").is_file():
        model_dir = build(args.model, args.layers, args.text_layers, build_device)
        built_s = time.perf_counter() - started
    else:
        model_dir, built_s = args.model, None
    mark("build")
    if cuda:  # the build filled its weights on this GPU: the figures are the render's, not the build's
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    print(f"model folder {model_dir}: " + (f"built in {built_s:.1f} s" if built_s is not None else "reused"),
          flush=True)
    model = VideoModelResource(model_path=str(model_dir.resolve()), model_id="wan2.1-t2v-1.3b-random",
                               device=args.device, dtype=dtype, build_tiny_if_missing=False,
                               num_threads=args.threads or os.cpu_count() or 1, checkpoint_every=0)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    started = time.perf_counter()
    pipe = model.pipeline()  # DiffusionPipeline.from_pretrained(..., local_files_only=True)
    load_s = time.perf_counter() - started
    mark("load")
    params = sum(p.numel() for p in pipe.transformer.parameters())
    shards = sorted(p.name for p in (model_dir / "transformer").glob("*.safetensors"))
    index = json.loads((model_dir / "transformer" / "diffusion_pytorch_model.safetensors.index.json").read_text())
    loaded = {"pipeline_class": type(pipe).__name__, "name_or_path": pipe.name_or_path,
              "transformer_dtype": str(pipe.transformer.dtype),
              "indexed_shards": sorted(set(index["weight_map"].values())), "indexed_tensors": len(index["weight_map"]),
              "transformer_tensors": len(pipe.transformer.state_dict())}
    specs = [replace(s, guidance_scale=args.guidance) for s in calibration_specs(
        model, calibration_prompts(args.clips), args.steps, args.width, args.height, args.frames)]
    print(f"loaded {model_dir} in {load_s:.1f} s: transformer {params / 1e9:.2f}B params in {len(shards)} shards, "
          f"{pipe.transformer.dtype} on {args.device}", flush=True)
    frames_seen: dict[str, dict] = {}

    def seen(name: str, frames: np.ndarray) -> None:
        frames_seen.setdefault(name, {"shape": list(frames.shape), "finite": True})
        frames_seen[name]["finite"] &= bool(np.isfinite(frames).all())

    if not args.no_warmup:
        model.render(replace(specs[0], steps=1))  # warm-up: kernels, allocator, cuDNN autotuning
    figures: dict[str, dict] = {}

    def bare(spec) -> tuple[float, np.ndarray]:  # noqa: ANN001
        generator = torch.Generator(device="cpu").manual_seed(spec.seed)
        sync()
        begun = time.perf_counter()
        out = pipe(prompt=spec.prompt, negative_prompt=spec.negative_prompt or None, height=spec.height,
                   width=spec.width, num_frames=spec.num_frames, num_inference_steps=spec.steps,
                   guidance_scale=spec.guidance_scale, generator=generator, output_type="np")
        sync()
        return time.perf_counter() - begun, np.asarray(out.frames[0], dtype=np.float32)

    bare_runs = [bare(spec) for spec in specs]
    mark("bare")
    for _, frames in bare_runs:
        seen("bare", frames)
    figures["bare"] = {"s_per_clip": sum(s for s, _ in bare_runs) / len(specs)}
    print(f"bare: {figures['bare']['s_per_clip']:.2f} s/clip", flush=True)
    exact_frames = []
    for name in [acceleration.EXACT, *names]:
        renders = [model.render(replace(spec, preset=name)) for spec in specs]
        mark(name)
        for r in renders:
            seen(name, r.frames)
        per_clip = sum(r.gpu_seconds for r in renders) / len(renders)
        per_step = sum(sum(r.step_seconds) for r in renders) / sum(len(r.step_seconds) for r in renders)
        row = {"s_per_clip": per_clip, "s_per_step": per_step}
        if name == acceleration.EXACT:
            exact_frames = [r.frames for r in renders]
            row["identical_to_bare"] = all(np.array_equal(r.frames, f) for r, (_, f) in zip(renders, bare_runs,
                                                                                              strict=True))
            row["pipeline_over_bare"] = per_clip / figures["bare"]["s_per_clip"]
        else:
            row["speedup"] = figures[acceleration.EXACT]["s_per_clip"] / per_clip
            row["psnr_db"] = float(np.mean([clip_psnr(e, r.frames) for e, r in zip(exact_frames, renders,
                                                                                  strict=True)]))
            row["ssim"] = float(np.mean([clip_ssim(e, r.frames) for e, r in zip(exact_frames, renders, strict=True)]))
        figures[name] = row
        print(f"{name}: {per_clip:.2f} s/clip, {per_step:.3f} s/step", flush=True)

    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    device_name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    print()
    print(f"machine: {platform.node()} {device_name}, {os.cpu_count()} cpus, torch {torch.__version__}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"clips: {len(specs)} x {args.width}x{args.height}x{args.frames}, {args.steps} steps, CFG {args.guidance}; "
          f"warm-up {'no' if args.no_warmup else '1 step'}; model load "
          f"{load_s:.1f} s ({dtype}); build {'reused' if built_s is None else f'{built_s:.1f} s'}; "
          f"peak {'GPU memory allocated' if cuda else 'RSS'} {peak:.1f} GiB")
    print("| run | s/clip | denoise s/step | vs bare | speed-up vs exact | PSNR vs exact (dB) | SSIM vs exact |")
    print("|---|---|---|---|---|---|---|")
    print(f"| bare pipe() | {figures['bare']['s_per_clip']:.2f} | | 1.00 | | | |")
    exact = figures[acceleration.EXACT]
    print(f"| pipeline, exact | {exact['s_per_clip']:.2f} | {exact['s_per_step']:.3f} | "
          f"{exact['pipeline_over_bare']:.3f} | 1.00x | | |")
    for name in names:
        row = figures[name]
        psnr = "identical" if row["psnr_db"] == float("inf") else f"{row['psnr_db']:.1f}"
        print(f"| pipeline, {name} | {row['s_per_clip']:.2f} | {row['s_per_step']:.3f} | "
              f"{row['s_per_clip'] / figures['bare']['s_per_clip']:.3f} | {row['speedup']:.2f}x | {psnr} | "
              f"{row['ssim']:.4f} |")
    print("CPU seconds (all threads) by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu_s.items())
          + f"; total {sum(cpu_s.values()):.1f}")
    print(f"pipeline exact frames identical to the bare loop: {exact['identical_to_bare']}")
    print("random weights: speed-ups show the hooks' mechanism and overhead, not a trained model's quality")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": device_name, "args": {k: str(v) for k, v in vars(args).items()}, "dtype": dtype,
            "model_dir": str(model_dir), "built_s": built_s, "load_s": load_s, "cpu_s": cpu_s,
            "loaded": loaded,
            "peak_gib": peak, "params": params, "shards": shards, "frames": frames_seen,
            "figures": figures}, indent=2, default=str))
    if args.require_identical and not exact["identical_to_bare"]:
        raise SystemExit("FAILED: the pipeline's exact frames differ from the bare loop's")


if __name__ == "__main__":
    main()
