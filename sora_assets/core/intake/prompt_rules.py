"""Per-row prompt rules: type coercion, model grid snapping, tier budgets, defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sora_assets.core.intake.deadlines import deadline_error
from sora_assets.core.render.acceleration import EXACT, normalize_preset
from sora_assets.core.render.model_families import FAMILIES, WAN, FamilyConstraints, resolve_family
from sora_assets.core.render.spec import MAX_SEED, GenerationSpec, derive_seed, normalize_prompt

KNOWN_COLUMNS = {
    "prompt", "negative_prompt", "seed", "tier", "width", "height", "num_frames", "fps", "steps",
    "guidance_scale", "shot_group", "anchor", "deadline", "id", "complexity", "shot", "camera", "continue_from",
    "image", "preset", "model",
}
INT_FIELDS = ("seed", "width", "height", "num_frames", "fps", "steps", "shot")
FLOAT_FIELDS = ("guidance_scale",)
TEXT_FIELDS = ("prompt", "negative_prompt", "tier", "id", "shot_group", "deadline", "complexity", "camera", "image",
               "preset", "model")
TRUE_WORDS = {"true", "yes", "y", "1"}
FALSE_WORDS = {"false", "no", "n", "0"}
PREVIOUS_SHOT = "previous"
MAX_SHOT = 9999
TIERS = ("free", "paid")
COMPLEXITIES = ("simple", "medium", "complex", "extreme")


@dataclass(frozen=True)
class ModelProfile:
    """What the model accepts; validation needs it without loading any weights."""

    model_id: str = "tiny-wan"
    revision: str = "unversioned"
    scheduler: str = "UniPCMultistepScheduler"
    size_multiple: int = 16  # the family's grid (Wan: height and width multiples of 16) ...
    frame_step: int = 4  # ... and frame rule (Wan: num_frames = 4k + 1); see core/render/model_families.py
    default_width: int = 64
    default_height: int = 64
    default_num_frames: int = 9
    default_fps: int = 8
    default_guidance_scale: float = 5.0
    min_size: int = 16
    max_size: int = 1280
    max_num_frames: int = 161
    family: str = WAN

    @classmethod
    def for_family(cls, family: FamilyConstraints | str, **values: Any) -> ModelProfile:
        """A profile whose grid, frame rule, frame limit and guidance default are the family's."""
        constraints = FAMILIES[family] if isinstance(family, str) else family
        grid = {"family": constraints.name, "size_multiple": constraints.size_multiple,
                "frame_step": constraints.frame_step, "max_num_frames": constraints.max_num_frames,
                "default_guidance_scale": constraints.default_guidance_scale}
        return cls(**{**grid, **values})

    def with_family(self, name: str) -> ModelProfile:
        """This profile with the grid of the family `name` names (its ids kept unless the family changes)."""
        family = resolve_family(name) if name != self.model_id else FAMILIES[self.family]
        if family.name == self.family:
            return self
        return ModelProfile.for_family(family, model_id=family.tiny_model_id, revision="unresolved",
                                       scheduler=family.scheduler, default_width=self.default_width,
                                       default_height=self.default_height, default_fps=self.default_fps,
                                       default_num_frames=family.snap_frames(self.default_num_frames))


@dataclass(frozen=True)
class TierPolicy:
    """Step budgets and resolution caps per tier (product brief: free 30 @ <=480p, paid 50)."""

    steps: dict[str, int] = field(default_factory=lambda: {"free": 30, "paid": 50})
    max_short_side: dict[str, int] = field(default_factory=lambda: {"free": 480})
    # acceleration preset per tier for rows without a `preset` (core/render/acceleration.py); unlisted tiers: exact
    presets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptLimits:
    min_prompt_chars: int = 3
    max_prompt_chars: int = 2000
    max_fps: int = 60
    max_steps: int = 200
    max_guidance_scale: float = 20.0

    @property
    def length_reason(self) -> str:
        """The rejection reason of a prompt outside the length limits (the GE suite's and validation's)."""
        return f"prompt length must be {self.min_prompt_chars}-{self.max_prompt_chars} characters"


INT_LIMIT = 2**53  # beyond this a value cannot be a sensible size, seed or count (and overflows int64 columns)


def coerce_value(name: str, value: Any) -> tuple[Any, str | None]:
    """Coerce one field to its type; return (value, error)."""
    value, error = _coerce_value(name, value)
    if error is None and name in INT_FIELDS and value is not None and abs(value) > INT_LIMIT:
        return None, f"{name} is out of range"
    return value, error


def _coerce_flag(name: str, value: Any) -> tuple[bool | None, str | None]:
    """`anchor`: JSON booleans, 0/1, or yes/no words (CSV cells are text)."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS, None
    return None, f"{name} must be true or false, got {str(value)[:40]!r}"


def _coerce_continue_from(value: Any) -> tuple[int | str | None, str | None]:
    """`continue_from`: the shot number to continue, or true / "previous" for the shot before."""
    if value is True or (isinstance(value, str) and value.strip().lower() in TRUE_WORDS | {PREVIOUS_SHOT}):
        return PREVIOUS_SHOT, None
    if value is False or (isinstance(value, str) and value.strip().lower() in FALSE_WORDS - {"0"}):
        return None, None
    number, error = _coerce_value("shot", value)
    if error:
        return None, f"continue_from must be a shot number or \"previous\", got {str(value)[:40]!r}"
    return number, None


def _coerce_value(name: str, value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    if name == "anchor":
        return _coerce_flag(name, value)
    if name == "continue_from":
        return _coerce_continue_from(value)
    if name in INT_FIELDS:
        if isinstance(value, bool):
            return None, f"{name} must be an integer, got a boolean"
        if isinstance(value, int):
            return value, None
        if isinstance(value, float):
            if math.isfinite(value) and value.is_integer():
                return int(value), None
            return None, f"{name} must be an integer, got {value!r}"
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text), None
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    return None, f"{name} must be an integer, got {value[:40]!r}"
                if math.isfinite(number) and number.is_integer():
                    return int(number), None
                return None, f"{name} must be an integer, got {value[:40]!r}"
        return None, f"{name} must be an integer, got {type(value).__name__}"
    if name in FLOAT_FIELDS:
        if isinstance(value, bool):
            return None, f"{name} must be a number, got a boolean"
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, f"{name} must be a number, got {str(value)[:40]!r}"
        if not math.isfinite(number):
            return None, f"{name} must be finite"
        return number, None
    if name in TEXT_FIELDS:
        if isinstance(value, str):
            return value, None
        if name in ("id", "shot_group", "deadline", "camera") and isinstance(value, int | float) \
                and not isinstance(value, bool):
            return str(value), None
        return None, f"{name} must be text, got {type(value).__name__}"
    return value, None


def coerce_row(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    typed: dict[str, Any] = {}
    errors: list[str] = []
    for name in KNOWN_COLUMNS:
        value, error = coerce_value(name, raw.get(name))
        typed[name] = value
        if error:
            errors.append(error)
    if typed.get("deadline") is not None:
        problem = deadline_error(typed["deadline"])
        if problem:
            errors.append(problem)
    for text_field in ("prompt", "camera"):
        if typed.get(text_field) is not None:
            typed[text_field] = normalize_prompt(typed[text_field])
    if typed.get("shot_group") is not None:
        typed["shot_group"] = typed["shot_group"].strip() or None
    if typed.get("tier") is not None:
        typed["tier"] = typed["tier"].strip().lower() or None
    if typed.get("complexity") is not None:
        typed["complexity"] = typed["complexity"].strip().lower() or None
    if typed.get("preset") is not None:  # checked against the preset names by the expectations suite
        typed["preset"] = normalize_preset(typed["preset"])
    if typed.get("model") is not None:  # a family name or alias, or a configured model id: see validation
        typed["model"] = typed["model"].strip().lower() or None
    return typed, errors


def _snap(value: int, multiple: int, minimum: int) -> int:
    # half-up, not Python's half-to-even: 24 -> 32 and 40 -> 48 alike
    return max(minimum, int(value / multiple + 0.5) * multiple)


def _snap_frames(value: int, step: int) -> int:
    return max(1, int(round((value - 1) / step)) * step + 1)


@dataclass
class RowPlan:
    spec: GenerationSpec
    tier: str
    complexity: str
    seed_derived: bool
    warnings: list[str]


def _capped_size(width: int, height: int, tier: str, profile: ModelProfile, tiers: TierPolicy,
                 warnings: list[str]) -> tuple[int, int]:
    """Scale down to the tier's short-side cap (kept on the model grid), warning when it does."""
    cap = tiers.max_short_side.get(tier)
    if cap is None or min(width, height) <= cap:
        return width, height
    scale = cap / min(width, height)
    capped_w, capped_h = (max(profile.size_multiple, int(v * scale) // profile.size_multiple
                              * profile.size_multiple) for v in (width, height))
    warnings.append(f"size {width}x{height} above the {tier} tier's {cap}p cap; "
                    f"scaled to {capped_w}x{capped_h}")
    return capped_w, capped_h


def _snapped_size(width: int, height: int, profile: ModelProfile, warnings: list[str]) -> tuple[int, int]:
    """Snap to the family's size multiple (the model's latent grid), warning when it moves."""
    snapped_w = _snap(width, profile.size_multiple, profile.size_multiple)
    snapped_h = _snap(height, profile.size_multiple, profile.size_multiple)
    if (snapped_w, snapped_h) != (width, height):
        warnings.append(f"size {width}x{height} snapped to {snapped_w}x{snapped_h} "
                        f"(multiples of {profile.size_multiple})")
    return snapped_w, snapped_h


def _snapped_frames(num_frames: int, profile: ModelProfile, warnings: list[str]) -> int:
    """Snap to the family's frame_step*k+1 frame counts, never above its maximum, warning when it moves."""
    snapped_frames = _snap_frames(num_frames, profile.frame_step)
    if snapped_frames > profile.max_num_frames:
        snapped_frames -= profile.frame_step
    if snapped_frames != num_frames:
        warnings.append(f"num_frames {num_frames} snapped to {snapped_frames} "
                        f"({profile.frame_step}k+1)")
    return snapped_frames


def _clamped_steps(typed: dict[str, Any], tier: str, tiers: TierPolicy, warnings: list[str]) -> int:
    """The row's steps, or the tier's budget when missing or above it (with a warning)."""
    budget = tiers.steps[tier]
    steps = typed.get("steps") or budget
    if steps > budget:
        warnings.append(f"steps {steps} above the {tier} tier's budget; clamped to {budget}")
        steps = budget
    return steps


def plan_row(typed: dict[str, Any], profile: ModelProfile, tiers: TierPolicy) -> RowPlan:
    """Fill defaults, snap sizes to the model grid and clamp to the tier's budget, with warnings."""
    warnings: list[str] = []
    tier = typed.get("tier") or "free"
    width, height = _capped_size(typed.get("width") or profile.default_width,
                                 typed.get("height") or profile.default_height, tier, profile, tiers, warnings)
    width, height = _snapped_size(width, height, profile, warnings)
    num_frames = _snapped_frames(typed.get("num_frames") or profile.default_num_frames, profile, warnings)
    steps = _clamped_steps(typed, tier, tiers, warnings)

    negative = typed.get("negative_prompt") or ""
    seed = typed.get("seed")
    seed_derived = seed is None
    if seed_derived:
        seed = derive_seed(typed["prompt"], negative)

    spec = GenerationSpec(
        prompt=typed["prompt"],
        negative_prompt=negative,
        model_id=profile.model_id,
        model_revision=profile.revision,
        seed=int(seed),
        steps=int(steps),
        width=int(width),
        height=int(height),
        num_frames=int(num_frames),
        fps=int(typed.get("fps") or profile.default_fps),
        guidance_scale=float(typed["guidance_scale"] if typed.get("guidance_scale") is not None
                             else profile.default_guidance_scale),
        scheduler=profile.scheduler,
        preset=typed.get("preset") or tiers.presets.get(tier, EXACT),
        model_family=profile.family,
    )
    return RowPlan(spec=spec, tier=tier, complexity=typed.get("complexity") or "medium",
                   seed_derived=seed_derived, warnings=warnings)


__all__ = [
    "COMPLEXITIES", "KNOWN_COLUMNS", "MAX_SEED", "TIERS", "ModelProfile", "PromptLimits", "RowPlan",
    "TierPolicy", "coerce_row", "coerce_value", "plan_row",
]
