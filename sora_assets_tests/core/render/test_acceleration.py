"""Acceleration presets: cache keys, per-tier and per-row choice, validation, and the calibration store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from sora_assets.core.intake.batch_files import batch_id_for, parse_batch
from sora_assets.core.intake.prompt_rules import ModelProfile, TierPolicy, coerce_row, plan_row
from sora_assets.core.intake.validation import validate_rows
from sora_assets.core.render import acceleration
from sora_assets.core.render.acceleration import (
    EXACT,
    PRESETS,
    Calibration,
    Preset,
    get_preset,
    load_calibrations,
    save_calibration,
    speedup_for,
    tier_presets_from_text,
)
from sora_assets.core.render.spec import GenerationSpec

SPEC = GenerationSpec(prompt="a red fox running through a forest", negative_prompt="", model_id="tiny-wan",
                      model_revision="abc123", seed=7, steps=30, width=64, height=64, num_frames=9, fps=8,
                      guidance_scale=5.0, scheduler="UniPCMultistepScheduler")
# the key of SPEC computed by the code before presets existed (main at 5098804): exact keys must not move
KEY_BEFORE_PRESETS = "ab173f6afc6bfd9fe9d63629711afa3e70af2abe109d67910d49a86495140be8"


def test_exact_leaves_every_existing_cache_key_unchanged() -> None:
    assert SPEC.preset == EXACT
    assert "preset" not in SPEC.canonical()
    assert SPEC.cache_key() == KEY_BEFORE_PRESETS


def test_each_preset_has_its_own_cache_key() -> None:
    keys = {name: replace(SPEC, preset=name).cache_key() for name in PRESETS}
    assert len(set(keys.values())) == len(PRESETS) >= 3
    assert replace(SPEC, preset="fast").canonical()["preset"] == PRESETS["fast"].fingerprint()


def test_redefining_a_preset_changes_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = replace(SPEC, preset="fast").cache_key()
    fast = PRESETS["fast"]
    monkeypatch.setitem(PRESETS, "fast", replace(fast, params={**fast.params, "threshold": 0.09}))
    assert replace(SPEC, preset="fast").cache_key() != before


def test_refresh_and_checkpoint_steps_line_up() -> None:
    fast = get_preset("fast")
    assert [s for s in range(1, 51) if fast.refreshes_after(s, 50)] == [25]
    assert [s for s in range(1, 51) if fast.checkpoint_due(s, 50, 10)] == [25]
    assert [s for s in range(1, 51) if get_preset(EXACT).checkpoint_due(s, 50, 10)] == [10, 20, 30, 40]
    assert not any(fast.checkpoint_due(s, 50, 0) for s in range(1, 51))  # checkpoints off stay off
    assert not any(get_preset(EXACT).refreshes_after(s, 30) for s in range(1, 31))


def test_unknown_names_and_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        get_preset("ludicrous")
    with pytest.raises(ValueError, match="unknown acceleration method"):
        Preset("x", "tea_cache")
    assert get_preset(None).name == EXACT and get_preset(" Fast ").name == "fast"


def test_tier_presets_parse_and_validate() -> None:
    assert tier_presets_from_text("free=fast, paid=exact") == {"free": "fast", "paid": "exact"}
    assert tier_presets_from_text("") == {}
    with pytest.raises(ValueError, match="TIER=PRESET"):
        tier_presets_from_text("fast")
    with pytest.raises(ValueError, match="not one of"):
        tier_presets_from_text("free=warp")


def test_preset_is_chosen_per_tier_and_overridden_per_row() -> None:
    tiers = TierPolicy(presets={"free": "fastest"})
    profile = ModelProfile()

    def planned(row: dict) -> str:
        typed, errors = coerce_row(row)
        assert not errors
        return plan_row(typed, profile, tiers).spec.preset

    assert planned({"prompt": "a quiet forest", "tier": "free"}) == "fastest"
    assert planned({"prompt": "a quiet forest", "tier": "paid"}) == EXACT
    assert planned({"prompt": "a quiet forest", "tier": "free", "preset": "Fast"}) == "fast"
    assert planned({"prompt": "a quiet forest", "tier": "paid", "preset": "fast"}) == "fast"
    assert planned({"prompt": "a quiet forest", "tier": "free", "preset": ""}) == "fastest"  # blank: tier default


def test_validation_rejects_an_unknown_preset_and_keeps_known_ones() -> None:
    lines = [json.dumps({"prompt": "a lighthouse at dusk", "preset": "fast"}),
             json.dumps({"prompt": "a lighthouse at dawn", "preset": "warp9"})]
    content = ("\n".join(lines) + "\n").encode()
    outcome = validate_rows(parse_batch(content, "jsonl"), batch_id_for("p.jsonl", content), ModelProfile())
    assert [a.spec["preset"] for a in outcome.accepted] == ["fast"]
    (rejected,) = outcome.rejected
    assert rejected.stage == "expectations" and "preset must be one of" in rejected.reason


def calibration(preset: str = "fast", speedup: float = 1.8, revision: str = "rev1") -> Calibration:
    return Calibration(model_id="wan-1.3b", model_revision=revision, preset=preset,
                       preset_fingerprint=PRESETS[preset].fingerprint(), speedup=speedup, psnr_db=31.2, ssim=0.93,
                       clips=4, exact_seconds_per_clip=10.0, preset_seconds_per_clip=10.0 / speedup, device="cuda",
                       width=832, height=480, num_frames=81, steps=8, measured_at=acceleration.now_iso())


def test_calibrations_are_stored_per_model_revision_and_used_only_for_it(tmp_path: Path) -> None:
    save_calibration(tmp_path, calibration("fast", 1.8))
    save_calibration(tmp_path, calibration("fastest", 2.4))
    save_calibration(tmp_path, calibration("fast", 1.1, revision="rev2"))
    found = load_calibrations(tmp_path)
    assert set(found) == {("wan-1.3b", "rev1", "fast"), ("wan-1.3b", "rev1", "fastest"), ("wan-1.3b", "rev2", "fast")}
    assert speedup_for(found, "wan-1.3b", "rev1", "fast") == (1.8, "calibrated")
    assert speedup_for(found, "wan-1.3b", "rev2", "fast") == (1.1, "calibrated")
    assert speedup_for(found, "wan-1.3b", "rev3", "fast") == (1.0, "uncalibrated")
    assert speedup_for(found, "wan-1.3b", "rev1", EXACT) == (1.0, "exact")
    save_calibration(tmp_path, calibration("fast", 1.9))  # measured again: replaces, never duplicates
    assert speedup_for(load_calibrations(tmp_path), "wan-1.3b", "rev1", "fast") == (1.9, "calibrated")


def test_a_calibration_of_an_older_preset_definition_is_ignored(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    save_calibration(tmp_path, calibration("fast", 1.8))
    fast = PRESETS["fast"]
    monkeypatch.setitem(PRESETS, "fast", replace(fast, params={"threshold": 0.2}))
    assert load_calibrations(tmp_path) == {}


def test_the_cost_model_divides_by_the_calibrated_speedup_and_keeps_history_exact() -> None:
    import pandas as pd

    from sora_assets.core.planning.estimates import StepCostModel

    history = pd.DataFrame([
        {"model": "wan-1.3b", "width": 832, "height": 480, "num_frames": 81, "steps": 10, "gpu_seconds": 21.0,
         "preset": None},  # rendered before presets: exact
        {"model": "wan-1.3b", "width": 832, "height": 480, "num_frames": 81, "steps": 10, "gpu_seconds": 21.0,
         "preset": "exact"},
        {"model": "wan-1.3b", "width": 832, "height": 480, "num_frames": 81, "steps": 10, "gpu_seconds": 2.1,
         "preset": "fastest"},  # must not make exact clips look ten times cheaper
    ])
    cost = StepCostModel.from_history(history, {("wan-1.3b", "rev1", "fast"): calibration("fast", 1.75)})
    spec = {"model_id": "wan-1.3b", "model_revision": "rev1", "width": 832, "height": 480, "num_frames": 81,
            "steps": 10}
    exact, source = cost.clip_seconds(spec)
    assert exact == pytest.approx(21.0) and source == "history"
    fast, source = cost.clip_seconds({**spec, "preset": "fast"})
    assert fast == pytest.approx(21.0 / 1.75) and source == "history+calibrated:fast"
    other_revision, source = cost.clip_seconds({**spec, "preset": "fast", "model_revision": "rev2"})
    assert other_revision == pytest.approx(21.0) and source == "history+uncalibrated:fast"
