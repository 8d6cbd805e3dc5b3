"""`sora-assets calibrate`: a preset measured against `exact` on the deployed model, same prompts, same seeds.

Runs wherever the real weights are (the speed-up and quality of random weights say nothing about a
trained model). Each prompt is rendered exact and with every preset asked for, through the same
`VideoModelResource.render` the pipeline uses, after one untimed warm-up render per preset; rounds
are interleaved and the best time per clip is kept. The stored figure is per model revision, so a
re-exported model is calibrated again before the planner trusts a speed-up for it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sora_assets.core.quality.fidelity import clip_psnr, clip_ssim
from sora_assets.core.render.acceleration import EXACT, Calibration, get_preset, now_iso
from sora_assets.core.render.spec import GenerationSpec

PROMPTS_FILE = "calibration_prompts.jsonl"
SEED_BASE = 9000


def calibration_prompts(limit: int, golden: Path | None = None) -> list[str]:
    """The first `limit` bundled calibration prompts (data/golden/, SORA_ASSETS_GOLDEN overrides)."""
    from sora_assets.services.safety_eval import golden_dir

    path = (golden or golden_dir()) / PROMPTS_FILE
    prompts = [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
    if limit < 1 or limit > len(prompts):
        raise ValueError(f"--prompts must be 1-{len(prompts)} ({path} holds {len(prompts)})")
    return prompts[:limit]


@dataclass
class PresetMeasurement:
    """One preset over the calibration clips: best seconds per clip, denoise seconds, fidelity to exact."""

    preset: str
    seconds: list[float] = field(default_factory=list)  # per clip, best of the rounds (denoise + decode)
    denoise_seconds: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    psnr_db: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    @property
    def seconds_per_clip(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def denoise_per_clip(self) -> float:
        return statistics.fmean(self.denoise_seconds)

    @property
    def mean_psnr(self) -> float:
        finite = [p for p in self.psnr_db if math.isfinite(p)]
        return statistics.fmean(finite) if len(finite) == len(self.psnr_db) else math.inf

    @property
    def mean_ssim(self) -> float:
        return statistics.fmean(self.ssim)


def calibration_specs(model: Any, prompts: list[str], steps: int, width: int, height: int,
                      num_frames: int) -> list[GenerationSpec]:
    profile = model.profile()
    return [GenerationSpec(prompt=prompt, negative_prompt="", model_id=profile.model_id,
                           model_revision=profile.revision, seed=SEED_BASE + i, steps=steps, width=width,
                           height=height, num_frames=num_frames, fps=profile.default_fps,
                           guidance_scale=profile.default_guidance_scale, scheduler=profile.scheduler)
            for i, prompt in enumerate(prompts)]


def warm_up(model: Any, spec: GenerationSpec, names: list[str]) -> None:
    """Untimed renders first: kernels, allocator, hook registration."""
    for name in names:
        model.render(replace(spec, preset=name, steps=min(spec.steps, 2)))


def measure_presets(model: Any, specs: list[GenerationSpec], presets: list[str], rounds: int = 1,
                    on_render: Callable[[str, int, float], None] | None = None,
                    warm: bool = True) -> dict[str, PresetMeasurement]:
    """Render every spec with every preset (exact always included), interleaved per round; fidelity vs exact."""
    names = [EXACT, *[get_preset(p).name for p in presets if get_preset(p).name != EXACT]]
    results = {name: PresetMeasurement(name) for name in names}
    if warm:
        warm_up(model, specs[0], names)
    for round_index in range(rounds):
        for i, spec in enumerate(specs):  # presets innermost: each clip's renders are back to back (less drift)
            for name in names:
                result = results[name]
                render = model.render(replace(spec, preset=name))
                denoise = float(sum(render.step_seconds))
                if round_index == 0:
                    result.seconds.append(render.gpu_seconds)
                    result.denoise_seconds.append(denoise)
                    result.frames.append(render.frames)
                else:
                    result.seconds[i] = min(result.seconds[i], render.gpu_seconds)
                    result.denoise_seconds[i] = min(result.denoise_seconds[i], denoise)
                if on_render:
                    on_render(name, i, render.gpu_seconds)
    for result in results.values():
        for reference, frames in zip(results[EXACT].frames, result.frames, strict=True):
            result.psnr_db.append(clip_psnr(reference, frames))
            result.ssim.append(clip_ssim(reference, frames))
    return results


def calibration_record(model: Any, spec: GenerationSpec, exact: PresetMeasurement,
                       measured: PresetMeasurement) -> Calibration:
    device, _ = model._device_and_dtype()
    return Calibration(
        model_id=spec.model_id, model_revision=spec.model_revision, preset=measured.preset,
        preset_fingerprint=get_preset(measured.preset).fingerprint(),
        speedup=exact.seconds_per_clip / measured.seconds_per_clip, psnr_db=measured.mean_psnr,
        ssim=measured.mean_ssim, clips=len(measured.seconds), exact_seconds_per_clip=exact.seconds_per_clip,
        preset_seconds_per_clip=measured.seconds_per_clip, device=device, width=spec.width, height=spec.height,
        num_frames=spec.num_frames, steps=spec.steps, measured_at=now_iso())

