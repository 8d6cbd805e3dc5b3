"""GPU-seconds estimates per clip and shard, calibrated on the warehouse's history.

Estimate = median seconds per step of past renders with the same model, size and frame count ×
steps. With no exact match, the model's median seconds per step per megavoxel (width × height ×
frames / 1e6) scales to the new size; with no history for the model, a documented prior does.

History means exact renders: a clip rendered with an acceleration preset is left out of it, and a
preset's clip is estimated as the exact estimate divided by the preset's calibrated speed-up for the
spec's model revision (`sora-assets calibrate`); uncalibrated presets are planned as exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sora_assets.core.render.acceleration import EXACT, Calibration, speedup_for
from sora_assets.core.render.model_families import resolve_family

# Prior: Wan2.1-T2V-1.3B in bf16 on one H100 runs about 1.6 s per step at 832x480x81 (32.3
# megavoxels, CFG on), i.e. about 0.05 s per step per megavoxel. Any history replaces it.
PRIOR_SECONDS_PER_STEP_PER_MEGAVOXEL = 0.05
DECODE_SHARE = 0.05  # VAE decode is about 5% of a 50-step render: added on top of the steps


def megavoxels(width: int, height: int, frames: int) -> float:
    return width * height * frames / 1e6


def prior_seconds_per_step(model: str, width: int, height: int, frames: int, family: str | None = None) -> float:
    """The prior, scaled by the model family's cost prior (Wan = 1; core/render/model_families.py)."""
    scale = resolve_family(family).cost_prior_scale
    return PRIOR_SECONDS_PER_STEP_PER_MEGAVOXEL * scale * megavoxels(width, height, frames)


@dataclass
class StepCostModel:
    """Median seconds per step by (model, width, height, frames), and per megavoxel by model."""

    exact: dict[tuple[str, int, int, int], float] = field(default_factory=dict)
    per_megavoxel: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    calibrations: dict[tuple[str, str, str], Calibration] = field(default_factory=dict)

    @classmethod
    def from_history(cls, clips: pd.DataFrame,
                     calibrations: dict[tuple[str, str, str], Calibration] | None = None) -> StepCostModel:
        """`clips` rows: model, width, height, num_frames, steps, gpu_seconds (renders only, not cache hits),
        optionally preset (accelerated renders are left out: they would make exact clips look cheaper)."""
        calibrations = calibrations or {}
        if clips.empty:
            return cls(calibrations=calibrations)
        rendered = clips[(clips["gpu_seconds"] > 0) & (clips["steps"] > 0)].copy()
        if "preset" in rendered.columns:
            rendered = rendered[rendered["preset"].fillna(EXACT) == EXACT]
        if rendered.empty:
            return cls(calibrations=calibrations)
        rendered["per_step"] = rendered["gpu_seconds"] / (rendered["steps"] * (1 + DECODE_SHARE))
        rendered["per_mvox"] = rendered["per_step"] / (
            rendered["width"] * rendered["height"] * rendered["num_frames"] / 1e6)
        exact = rendered.groupby(["model", "width", "height", "num_frames"])["per_step"].median()
        by_model = rendered.groupby("model")["per_mvox"].median()
        return cls({(str(m), int(w), int(h), int(f)): float(v) for (m, w, h, f), v in exact.items()},
                   {str(m): float(v) for m, v in by_model.items()}, len(rendered), calibrations)

    def seconds_per_step(self, model: str, width: int, height: int, frames: int,
                         family: str | None = None) -> tuple[float, str]:
        """Estimate and its source: history (same shape), history-scaled (same model) or prior."""
        key = (model, width, height, frames)
        if key in self.exact:
            return self.exact[key], "history"
        if model in self.per_megavoxel:
            return self.per_megavoxel[model] * megavoxels(width, height, frames), "history-scaled"
        return prior_seconds_per_step(model, width, height, frames, family), "prior"

    def clip_seconds(self, spec: dict[str, Any]) -> tuple[float, str]:
        """Seconds for one clip and the source of the figure; an accelerated clip's source also says whether its
        speed-up was calibrated (e.g. "history+calibrated:fast" or "prior+uncalibrated:fast")."""
        per_step, source = self.seconds_per_step(spec["model_id"], int(spec["width"]), int(spec["height"]),
                                                 int(spec["num_frames"]), spec.get("model_family"))
        seconds = per_step * int(spec["steps"]) * (1 + DECODE_SHARE)
        preset = spec.get("preset") or EXACT
        if preset == EXACT:
            return seconds, source
        speedup, how = speedup_for(self.calibrations, spec["model_id"], str(spec.get("model_revision", "")), preset)
        return seconds / speedup, f"{source}+{how}:{preset}"

    def shard_seconds(self, specs: Iterable[dict[str, Any]]) -> tuple[float, dict[str, int]]:
        total, sources = 0.0, {}
        for spec in specs:
            seconds, source = self.clip_seconds(spec)
            total += seconds
            sources[source] = sources.get(source, 0) + 1
        return total, sources
