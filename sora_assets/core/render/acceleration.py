"""Acceleration presets: named, frozen diffusers cache-hook settings, and their calibrated price.

A preset trades quality for GPU-seconds by skipping transformer work on some denoising steps (the
training-free caches diffusers ships for Wan's transformer: First Block Cache and TaylorSeer). A
preset's name is what users choose (per tier or per row); its definition is fingerprinted into the
cache key, so changing a threshold can never reuse clips made with the old one.

Resume stays bit-exact because every preset has a refresh interval: the hook state is reset after
every `refresh_every` steps, in every render, checkpointed or not. The state is then a function of
the steps since the last refresh only, and an accelerated clip checkpoints only at refresh steps, so a
resumed render re-derives the state by running its first resumed step in full, exactly as the
uninterrupted render did. Nothing of the hook is checkpointed (its tensors are per-block activations:
hundreds of MB per clip at 480p). Measured in bench/acceleration.py and the resume tests: without the
refresh, a resumed render differs from the uninterrupted one.

This module is pure (no torch, no diffusers): the hook configs are built in
`sora_assets.resources.acceleration_hooks` from `Preset.method` and `Preset.params`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sora_assets.core.storage.fsutil import atomic_write_json

EXACT = "exact"
# Pyramid Attention Broadcast is not offered: its hook keeps one state per attention module shared by the cond and
# uncond calls, and Wan runs CFG as two separate calls, so the uncond pass would reuse the cond pass's attention.
METHODS = ("none", "first_block_cache", "taylorseer")


@dataclass(frozen=True)
class Preset:
    """A named acceleration: which diffusers cache hook, its parameters, and its refresh interval."""

    name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    # hook state reset after every k steps; accelerated clips checkpoint only there. Each refresh costs the steps
    # the hook needs to warm up again (bench/acceleration.py, 30 steps: TaylorSeer computes 43% of the blocks with
    # a refresh at 25, 37% without, 50% with one every 10), so it is rarer than exact clips' checkpoints: a kill
    # re-runs at most 24 steps of such a clip
    refresh_every: int = 25
    summary: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown acceleration method {self.method!r}; known: {', '.join(METHODS)}")
        if self.refresh_every < 1:
            raise ValueError("refresh_every must be at least 1")

    @property
    def accelerated(self) -> bool:
        return self.method != "none"

    def fingerprint(self) -> str:
        """What the cache key holds: the name plus a hash of the definition (method, params, refresh)."""
        definition = json.dumps({"method": self.method, "params": self.params, "refresh_every": self.refresh_every},
                                sort_keys=True, separators=(",", ":"))
        return f"{self.name}:{hashlib.sha256(definition.encode()).hexdigest()[:12]}"

    def refreshes_after(self, step: int, total_steps: int) -> bool:
        """The hook state is reset after `step` (1-based) completed steps."""
        return self.accelerated and step < total_steps and step % self.refresh_every == 0

    def checkpoint_due(self, step: int, total_steps: int, checkpoint_every: int) -> bool:
        """Save a checkpoint after `step`? Exact clips every `checkpoint_every` steps; accelerated ones at their
        refresh steps instead (the only steps a resume re-derives the hook state from); never with checkpoints
        off (0) nor after the last step."""
        if checkpoint_every <= 0 or step >= total_steps:
            return False
        return step % (self.refresh_every if self.accelerated else checkpoint_every) == 0


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(EXACT, "none", summary="no caching: every step runs the whole transformer"),
    # First Block Cache: run block 0, skip the other blocks while block 0's residual changed by less than
    # `threshold` (relative mean abs) since the last full step. Published: 1.85x on Wan2.1-T2V-14B at 0.06.
    Preset("fast", "first_block_cache", {"threshold": 0.05},
           summary="First Block Cache, threshold 0.05: skips a step's remaining blocks when the first block's "
                   "output barely changed"),
    # TaylorSeer: full steps on a fixed schedule, the blocks' outputs predicted by a first-order Taylor
    # expansion in between (2 full warm-up steps after each refresh, then every 3rd step in full).
    # diffusers' default module patterns ("^blocks.*attn", full match) match none of Wan's modules (attn1, attn2):
    # the attention and feed-forward outputs of every block are named here
    Preset("fastest", "taylorseer", {"cache_interval": 3, "disable_cache_before_step": 2, "max_order": 1,
                                     "cache_identifiers": [r"blocks\.\d+\.(attn1|attn2|ffn)"]},
           summary="TaylorSeer, first order, every 3rd step in full: blocks' outputs extrapolated in between"),
)}


def preset_names() -> list[str]:
    return list(PRESETS)


def normalize_preset(name: Any) -> str | None:
    """A preset name as stored ("Fast " -> "fast"); None for a blank cell."""
    if name is None:
        return None
    text = str(name).strip().lower()
    return text or None


def preset_error(name: str) -> str | None:
    """Why `name` is not a preset (for row validation), or None."""
    if name in PRESETS:
        return None
    return f"preset {name[:40]!r} is not one of {', '.join(PRESETS)}"


def get_preset(name: str | None) -> Preset:
    """The preset called `name` (None: exact); unknown names raise ValueError."""
    key = normalize_preset(name) or EXACT
    if key not in PRESETS:
        raise ValueError(preset_error(key))
    return PRESETS[key]


def tier_presets_from_text(text: str) -> dict[str, str]:
    """`free=fast,paid=exact` -> {"free": "fast", "paid": "exact"} (names validated)."""
    presets: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        tier, sep, name = part.partition("=")
        if not sep or not tier.strip():
            raise ValueError(f"expected TIER=PRESET pairs such as free=fast,paid=exact, got {part!r}")
        presets[tier.strip().lower()] = get_preset(name).name
    return presets


# ---------------------------------------------------------------- calibration: measured speed-up and quality

@dataclass(frozen=True)
class Calibration:
    """A preset measured against `exact` on the deployed model revision (same prompts, same seeds)."""

    model_id: str
    model_revision: str
    preset: str
    preset_fingerprint: str
    speedup: float  # exact seconds per clip / preset seconds per clip
    psnr_db: float
    ssim: float
    clips: int
    exact_seconds_per_clip: float
    preset_seconds_per_clip: float
    device: str
    width: int
    height: int
    num_frames: int
    steps: int
    measured_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SAFE = re.compile(r"[^a-z0-9._-]+")


def calibration_path(root: Path, model_id: str, model_revision: str) -> Path:
    """One JSON file per model revision under `<home>/calibration/`, holding every preset measured on it."""
    return root / f"{_SAFE.sub('-', model_id.lower())}@{_SAFE.sub('-', model_revision.lower())}.json"


def save_calibration(root: Path, calibration: Calibration) -> Path:
    path = calibration_path(root, calibration.model_id, calibration.model_revision)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[calibration.preset] = calibration.to_dict()
    atomic_write_json(path, data)
    return path


def load_calibrations(root: Path) -> dict[tuple[str, str, str], Calibration]:
    """Every stored calibration, keyed (model_id, model_revision, preset); only those still matching the
    preset's current definition (a redefined preset must be measured again)."""
    found: dict[tuple[str, str, str], Calibration] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for record in data.values():
            try:
                calibration = Calibration(**record)
            except TypeError:
                continue
            preset = PRESETS.get(calibration.preset)
            if preset is None or preset.fingerprint() != calibration.preset_fingerprint:
                continue
            found[(calibration.model_id, calibration.model_revision, calibration.preset)] = calibration
    return found


def speedup_for(calibrations: dict[tuple[str, str, str], Calibration], model_id: str, model_revision: str,
                preset: str | None) -> tuple[float, str]:
    """The speed-up to plan with and its source: 1.0 for exact; the calibrated figure for this model
    revision when one exists; otherwise 1.0 ("uncalibrated"): a deadline is never promised on a
    published figure measured on someone else's model."""
    name = normalize_preset(preset) or EXACT
    if name == EXACT:
        return 1.0, "exact"
    calibration = calibrations.get((model_id, model_revision, name))
    if calibration is None or not math.isfinite(calibration.speedup) or calibration.speedup <= 0:
        return 1.0, "uncalibrated"
    return calibration.speedup, "calibrated"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
