"""Prompt rules: type coercion, grid snapping, tier caps and budgets, defaults."""

from __future__ import annotations

import pytest

from sora_assets.core.intake.prompt_rules import (
    KNOWN_COLUMNS,
    MAX_SEED,
    ModelProfile,
    TierPolicy,
    coerce_row,
    coerce_value,
    plan_row,
)
from sora_assets.core.render.spec import derive_seed, normalize_prompt

PROFILE = ModelProfile()
TIERS = TierPolicy()


def _plan(**raw):
    raw.setdefault("prompt", "a red fox running through snow")
    typed, errors = coerce_row(raw)
    assert errors == []
    return plan_row(typed, PROFILE, TIERS)


# --- coercion --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (12, 12), ("12", 12), (" 7 ", 7), ("12.0", 12), (12.0, 12), ("1e3", 1000), (-3, -3), ("0", 0),
])
def test_int_coercion_accepts(value, expected):
    result, error = coerce_value("width", value)
    assert error is None
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", ["abc", "", "12.5", 12.5, "nan", "inf", float("nan"), float("inf"),
                                   [1], {"a": 1}])
def test_int_coercion_rejects(value):
    result, error = coerce_value("width", value)
    assert result is None
    assert error is not None and error.startswith("width must be an integer")


@pytest.mark.parametrize("value", [True, False])
def test_boolean_seed_is_rejected(value):
    result, error = coerce_value("seed", value)
    assert result is None
    assert "boolean" in error


def test_long_bad_value_is_truncated_in_error():
    _, error = coerce_value("steps", "x" * 500)
    assert error is not None and len(error) < 100


@pytest.mark.parametrize(("value", "expected"), [(5, 5.0), ("5.5", 5.5), (" 7 ", 7.0), (0, 0.0)])
def test_float_coercion_accepts(value, expected):
    result, error = coerce_value("guidance_scale", value)
    assert error is None and result == expected and isinstance(result, float)


@pytest.mark.parametrize(("value", "fragment"), [
    (True, "boolean"), ("abc", "number"), (float("nan"), "finite"), ("inf", "finite"), (None, None),
])
def test_float_coercion_rejects(value, fragment):
    result, error = coerce_value("guidance_scale", value)
    assert result is None
    if fragment is None:
        assert error is None  # None is "not given", not an error
    else:
        assert fragment in error


def test_text_coercion():
    assert coerce_value("prompt", "a cat") == ("a cat", None)
    value, error = coerce_value("prompt", 42)
    assert value is None and "prompt must be text" in error
    assert coerce_value("id", 5) == ("5", None)
    assert coerce_value("shot_group", 3) == ("3", None)
    value, error = coerce_value("id", True)
    assert value is None and error is not None
    value, error = coerce_value("tier", 1)
    assert value is None and error is not None


def test_unknown_field_passes_through():
    payload = {"nested": [1, 2]}
    assert coerce_value("lighting_notes", payload) == (payload, None)


@pytest.mark.parametrize(("raw", "expected"), [(True, True), ("yes", True), ("1", True), (1, True), (False, False),
                                               ("No", False), (0, False)])
def test_anchor_flag_accepts_booleans_and_csv_words(raw, expected):
    assert coerce_value("anchor", raw) == (expected, None)


def test_anchor_flag_rejects_other_values():
    value, error = coerce_value("anchor", "master")
    assert value is None and "anchor must be true or false" in error


@pytest.mark.parametrize(("raw", "expected"), [(True, "previous"), ("previous", "previous"), ("yes", "previous"),
                                               (2, 2), ("3", 3), (False, None)])
def test_continue_from_takes_a_shot_number_or_previous(raw, expected):
    assert coerce_value("continue_from", raw) == (expected, None)


def test_continue_from_rejects_text():
    assert "continue_from must be a shot number" in coerce_value("continue_from", "the wide one")[1]


def test_coerce_row_normalises_and_collects_all_errors():
    typed, errors = coerce_row({"prompt": "  a   cat\n on\ta mat ", "tier": "  PAID ", "complexity": " Complex",
                                "width": "abc", "seed": True, "extra": "ignored"})
    assert set(typed) == KNOWN_COLUMNS
    assert typed["prompt"] == "a cat on a mat"
    assert typed["tier"] == "paid"
    assert typed["complexity"] == "complex"
    assert typed["width"] is None and typed["seed"] is None
    assert len(errors) == 2
    assert any(e.startswith("width") for e in errors) and any(e.startswith("seed") for e in errors)


def test_coerce_row_blank_tier_is_not_given():
    typed, errors = coerce_row({"prompt": "a cat", "tier": "   ", "complexity": ""})
    assert errors == []
    assert typed["tier"] is None and typed["complexity"] is None


# --- planning --------------------------------------------------------------------------------------

def test_defaults():
    plan = _plan()
    spec = plan.spec
    assert (spec.width, spec.height) == (PROFILE.default_width, PROFILE.default_height)
    assert spec.num_frames == PROFILE.default_num_frames
    assert spec.fps == PROFILE.default_fps
    assert spec.guidance_scale == PROFILE.default_guidance_scale
    assert spec.steps == TIERS.steps["free"] == 30
    assert spec.model_id == PROFILE.model_id and spec.model_revision == PROFILE.revision
    assert spec.scheduler == PROFILE.scheduler
    assert spec.negative_prompt == ""
    assert plan.tier == "free" and plan.complexity == "medium"
    assert plan.warnings == []


def test_paid_default_steps():
    assert _plan(tier="paid").spec.steps == 50


def test_width_snapped_to_grid_with_warning():
    plan = _plan(width=70)
    assert plan.spec.width == 64
    assert any("snapped" in w and "70" in w for w in plan.warnings)


# halves round up (72 -> 80, like 24 -> 32 and 40 -> 48), not to even
@pytest.mark.parametrize(("width", "expected"), [(64, 64), (72, 80), (73, 80), (24, 32), (40, 48), (1, 16), (8, 16),
                                                 (100, 96)])
def test_width_snap_to_nearest_multiple_of_16(width, expected):
    assert _plan(width=width).spec.width == expected


def test_on_grid_size_has_no_warning():
    plan = _plan(width=128, height=96)
    assert (plan.spec.width, plan.spec.height) == (128, 96)
    assert plan.warnings == []


@pytest.mark.parametrize(("frames", "expected"), [(10, 9), (9, 9), (1, 1), (2, 1), (12, 13), (17, 17), (161, 161),
                                                  (160, 161), (100, 101)])
def test_num_frames_snap_to_4k_plus_1(frames, expected):
    plan = _plan(num_frames=frames)
    assert plan.spec.num_frames == expected
    assert (plan.spec.num_frames - 1) % 4 == 0
    assert any("num_frames" in w for w in plan.warnings) == (frames != expected)


def test_num_frames_snap_never_exceeds_profile_maximum():
    profile = ModelProfile(max_num_frames=17)
    typed, _ = coerce_row({"prompt": "a cat", "num_frames": 20})  # nearest 4k+1 is 21 > 17
    plan = plan_row(typed, profile, TIERS)
    assert plan.spec.num_frames == 17


def test_free_tier_480p_cap_scales_720p_down():
    plan = _plan(width=1280, height=720)
    assert (plan.spec.width, plan.spec.height) == (848, 480)
    assert any("cap" in w for w in plan.warnings)


def test_free_tier_cap_portrait():
    plan = _plan(width=720, height=1280)
    assert (plan.spec.width, plan.spec.height) == (480, 848)


def test_paid_tier_has_no_resolution_cap():
    plan = _plan(width=1280, height=720, tier="paid")
    assert (plan.spec.width, plan.spec.height) == (1280, 720)
    assert plan.warnings == []


def test_free_tier_at_cap_is_untouched():
    plan = _plan(width=848, height=480)
    assert (plan.spec.width, plan.spec.height) == (848, 480)
    assert plan.warnings == []


@pytest.mark.parametrize("tier", ["free", "paid"])
@pytest.mark.parametrize(("width", "height"), [(16, 16), (33, 1279), (1280, 1280), (1000, 562), (517, 999),
                                               (1280, 16), (481, 481), (496, 1200)])
def test_size_invariants(tier, width, height):
    spec = _plan(width=width, height=height, tier=tier).spec
    assert spec.width % 16 == 0 and spec.height % 16 == 0
    assert spec.width >= 16 and spec.height >= 16
    if tier == "free":
        assert min(spec.width, spec.height) <= 480
    else:
        assert abs(spec.width - width) <= 8 and abs(spec.height - height) <= 8


@pytest.mark.parametrize(("tier", "steps", "expected", "warned"), [
    ("free", 40, 30, True), ("free", 30, 30, False), ("free", 12, 12, False),
    ("paid", 60, 50, True), ("paid", 40, 40, False), ("paid", 50, 50, False),
])
def test_steps_clamped_to_tier_budget(tier, steps, expected, warned):
    plan = _plan(tier=tier, steps=steps)
    assert plan.spec.steps == expected
    assert any("clamped" in w for w in plan.warnings) == warned


def test_missing_seed_is_derived_deterministically():
    a = _plan(prompt="a lighthouse at dusk", negative_prompt="blurry")
    b = _plan(prompt="a  lighthouse   at dusk ", negative_prompt="blurry")
    assert a.seed_derived and b.seed_derived
    assert a.spec.seed == b.spec.seed == derive_seed("a lighthouse at dusk", "blurry")
    assert 0 <= a.spec.seed <= MAX_SEED
    c = _plan(prompt="a lighthouse at dusk", negative_prompt="grainy")
    assert c.spec.seed != a.spec.seed  # negative prompt is part of the material


@pytest.mark.parametrize("seed", [0, 1, 123456, MAX_SEED])
def test_given_seed_is_kept(seed):
    plan = _plan(seed=seed)
    assert plan.spec.seed == seed
    assert plan.seed_derived is False


def test_seed_as_text_is_used():
    plan = _plan(seed="42")
    assert plan.spec.seed == 42 and not plan.seed_derived


def test_explicit_zero_guidance_is_kept():
    assert _plan(guidance_scale=0).spec.guidance_scale == 0.0
    assert _plan(guidance_scale="7.5").spec.guidance_scale == 7.5


def test_fps_complexity_and_negative_prompt_pass_through():
    plan = _plan(fps=24, complexity="Extreme", negative_prompt="  low   quality ")
    assert plan.spec.fps == 24
    assert plan.complexity == "extreme"
    assert normalize_prompt(plan.spec.negative_prompt) == "low quality"


def test_custom_tier_policy():
    tiers = TierPolicy(steps={"free": 10, "paid": 20}, max_short_side={"free": 240, "paid": 480})
    typed, _ = coerce_row({"prompt": "a cat", "tier": "paid", "width": 1280, "height": 720, "steps": 25})
    plan = plan_row(typed, PROFILE, tiers)
    assert plan.spec.steps == 20
    assert min(plan.spec.width, plan.spec.height) <= 480
    assert (plan.spec.width, plan.spec.height) == (848, 480)
