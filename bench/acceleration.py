"""Acceleration presets on CPU: seconds per clip, speed-up and PSNR/SSIM against `exact`, same seeds, same run.

Builds a tiny Wan text-to-video model that is deep enough for the transformer to dominate a render
(default 8 layers, 4 heads x 32, ffn 512; the text encoder and VAE stay tiny), renders the same
clips with every preset through `VideoModelResource.render` (the pipeline's own path: hooks,
refreshes, NaN guard, step timing), in interleaved rounds after a warm-up, and prints:

- seconds per clip (denoise + decode) and denoise seconds, best of the rounds per clip;
- speed-up against exact, and the share of transformer blocks actually computed;
- PSNR (dB) and SSIM of each preset's frames against exact, same seeds;
- resume: a render stopped after step 15 and resumed from its step-10 checkpoint, bit-exact or not,
  with the hook state re-derived (the preset's refresh) and without it (refresh switched off);
- what the refresh costs: the speed-up of the same preset with the refresh switched off.

Random weights show the mechanism, its overhead and the bookkeeping, not the quality a trained model
keeps: a trained Wan's residuals change far more smoothly between steps. Use `sora-assets calibrate`
on the real weights for figures the planner can use.

    MKL_CBWR=AUTO,STRICT python bench/acceleration.py [--layers 8] [--size 64] [--frames 9] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sora_assets.core.render.acceleration import Preset


def build_deep_tiny_wan(target: Path, layers: int, heads: int, head_dim: int, ffn: int) -> Path:
    """The tiny Wan of `resources/tiny_wan.py` with a deeper, wider transformer (same tokenizer, text encoder,
    VAE and scheduler), saved in the Diffusers layout."""
    import torch
    from diffusers import WanPipeline, WanTransformer3DModel

    from sora_assets.resources.tiny_wan import BUILD_SEED, _save, _scheduler, _text_and_vae, _tokenizer

    tokenizer = _tokenizer()
    torch.manual_seed(BUILD_SEED)
    text_encoder, vae = _text_and_vae(tokenizer)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim, in_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=ffn, num_layers=layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=64)
    return _save(WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=_scheduler(),
                             transformer=transformer), target)


class TransformerProbe:
    """Bench-only instrumentation: time inside the transformer, and how often its last block really computed
    (a forward pre-hook on the block's first feed-forward projection, which a cached step never reaches)."""

    def __init__(self, transformer) -> None:  # noqa: ANN001 - a diffusers WanTransformer3DModel
        self.calls = self.block_computes = 0
        self.seconds = 0.0
        self._started = 0.0
        transformer.register_forward_pre_hook(self._enter)
        transformer.register_forward_hook(self._leave)
        transformer.blocks[-1].ffn.net[0].register_forward_pre_hook(self._block)

    def _enter(self, *_args) -> None:  # noqa: ANN002
        self.calls += 1
        self._started = time.perf_counter()

    def _leave(self, *_args) -> None:  # noqa: ANN002
        self.seconds += time.perf_counter() - self._started

    def _block(self, *_args) -> None:  # noqa: ANN002
        self.block_computes += 1

    def take(self) -> tuple[int, int, float]:
        found = (self.calls, self.block_computes, self.seconds)
        self.calls = self.block_computes = 0
        self.seconds = 0.0
        return found


class NoRefresh(Preset):
    """Bench only: the same hook with its state never reset (resume cannot re-derive it)."""

    def refreshes_after(self, step: int, total_steps: int) -> bool:
        return False


def resume_check(model, spec, tmp: Path, stop_after: int) -> bool:  # noqa: ANN001
    """Stop a render after `stop_after` steps (raise failpoint), resume it, compare with an uninterrupted render."""
    import numpy as np

    from sora_assets.core.render.checkpoints import ClipCheckpoints
    from sora_assets.core.render.failpoints import ENV_VAR, FailpointError

    reference = model.render(spec).frames
    folder = Path(tempfile.mkdtemp(dir=tmp))
    checkpoints = ClipCheckpoints(folder / "ck", "bench", "clip")
    os.environ[ENV_VAR] = f"generate.after_step={stop_after}:raise"
    try:
        model.render(spec, "clip", checkpoints, failpoint_dir=folder / "marks")
    except FailpointError:
        pass
    finally:
        del os.environ[ENV_VAR]
    resumed = model.render(spec, "clip", checkpoints)
    assert resumed.resumed_from_step > 0, "no checkpoint to resume from"
    return bool(np.array_equal(resumed.frames, reference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--ffn", type=int, default=512)
    parser.add_argument("--size", type=int, default=64, help="width and height")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--steps", type=int, default=30, help="default: the free tier's budget")
    parser.add_argument("--clips", type=int, default=3, help="calibration prompts (and seeds) per preset")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fbc-thresholds", default="0.2",
                        help="bench-only First Block Cache thresholds besides the presets' (comma-separated; '' none): "
                             "random weights move block 0's residual more than a trained model does")
    args = parser.parse_args()

    from sora_assets.core.render import acceleration
    from sora_assets.resources.video_model import VideoModelResource
    from sora_assets.services.calibration import calibration_prompts, calibration_specs, measure_presets, warm_up

    fast = acceleration.PRESETS["fast"]
    for threshold in filter(None, (t.strip() for t in args.fbc_thresholds.split(","))):
        name = f"fbc-{threshold}"  # in this process only: never a preset a batch can name
        acceleration.PRESETS[name] = replace(fast, name=name, params={"threshold": float(threshold)})
    fastest = acceleration.PRESETS["fastest"]
    # bench-only: TaylorSeer's lite mode extrapolates only proj_out (blocks skipped outright): no per-block factors
    # in memory (the fastest preset holds 2 orders x 3 modules x 30 blocks x cond/uncond of activations)
    acceleration.PRESETS["taylorseer-lite"] = replace(fastest, name="taylorseer-lite", params={
        **{k: v for k, v in fastest.params.items() if k != "cache_identifiers"}, "use_lite_mode": True})
    presets = [n for n in acceleration.PRESETS if n != acceleration.EXACT]
    for name in presets:  # the same hook without the refresh: what bit-exact resume costs, and why it is needed
        original = acceleration.PRESETS[name]
        acceleration.PRESETS[f"{name}/no-refresh"] = NoRefresh(f"{name}/no-refresh", original.method,
                                                               original.params, original.refresh_every)
    names = list(acceleration.PRESETS)
    with tempfile.TemporaryDirectory(prefix="bench-accel-") as tmp:
        started = time.perf_counter()
        folder = build_deep_tiny_wan(Path(tmp) / "deep-tiny-wan", args.layers, args.heads, args.head_dim, args.ffn)
        build_s = time.perf_counter() - started
        model = VideoModelResource(model_path=str(folder), model_id="deep-tiny-wan", checkpoint_every=10,
                                   num_threads=args.threads, build_tiny_if_missing=False)
        probe = TransformerProbe(model.pipeline().transformer)
        specs = calibration_specs(model, calibration_prompts(args.clips), args.steps, args.size, args.size,
                                  args.frames)
        counts: dict[str, list[tuple[int, int, float, float]]] = {n: [] for n in names}

        def tally(name: str, _index: int, seconds: float) -> None:
            counts[name].append((*probe.take(), seconds))

        warm_up(model, specs[0], names)
        probe.take()  # the warm-up's calls are not counted
        results = measure_presets(model, specs, names, rounds=args.rounds, on_render=tally, warm=False)
        exact = results[acceleration.EXACT]
        resumed = {}
        for name in names:  # stopped 2 steps after the refresh (exact: after step 27), resumed from its checkpoint
            preset = acceleration.PRESETS[name]
            stop_after = min((preset.refresh_every if preset.accelerated else 25) + 2, args.steps - 1)
            resumed[name] = resume_check(model, replace(specs[0], preset=name), Path(tmp), stop_after)

    import torch

    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"torch {torch.__version__}, {args.threads} thread(s), MKL_CBWR={os.environ.get('MKL_CBWR', 'unset')}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"model: tiny Wan, random weights, transformer {args.layers} layers x {args.heads} heads x "
          f"{args.head_dim}, ffn {args.ffn} (built in {build_s:.1f} s); clips {args.size}x{args.size}x{args.frames}, "
          f"{args.steps} steps, CFG 5.0, {len(specs)} prompts/seeds, best of {args.rounds} interleaved rounds; "
          f"checkpoints every 10 steps (accelerated: at the refresh, every {fast.refresh_every})")
    inside, total = (sum(c[i] for c in counts[acceleration.EXACT]) for i in (2, 3))
    print(f"transformer share of an exact render (denoise + decode): {inside / total if total else 0.0:.0%}")
    print()
    print("| preset | s/clip | denoise s/clip | speed-up | last block computed | PSNR vs exact (dB) | SSIM vs exact "
          "| resume bit-exact |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        result = results[name]
        calls, computed = (sum(c[i] for c in counts[name]) for i in (0, 1))
        psnr = "identical" if result.mean_psnr == float("inf") else f"{result.mean_psnr:.1f}"
        print(f"| {name} | {result.seconds_per_clip:.3f} | {result.denoise_per_clip:.3f} | "
              f"{exact.seconds_per_clip / result.seconds_per_clip:.2f}x | {computed / max(calls, 1):.0%} | {psnr} | "
              f"{result.mean_ssim:.4f} | {'yes' if resumed[name] else 'no'} |")
    print()
    print("Random weights: these figures show the mechanism and its overhead, not the quality or speed-up a trained "
          "model keeps. Calibrate on the real weights: sora-assets calibrate --preset P")


if __name__ == "__main__":
    main()
