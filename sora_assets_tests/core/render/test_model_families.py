"""Model families: each family's grid and frame rule, rows that pick a family, and what is priced per family."""

from __future__ import annotations

import json

import pytest

from sora_assets.core.intake.batch_files import batch_id_for, parse_batch
from sora_assets.core.intake.prompt_rules import ModelProfile
from sora_assets.core.intake.validation import estimate_specs, link_conditioning, validate_rows
from sora_assets.core.planning.estimates import prior_seconds_per_step
from sora_assets.core.render.model_families import FAMILIES, LTX, WAN, resolve_family
from sora_assets.core.render.spec import GenerationSpec

WAN_PROFILE = ModelProfile()
LTX_PROFILE = ModelProfile.for_family(LTX, model_id="tiny-ltx", revision="r-ltx", scheduler="FlowMatch")


@pytest.mark.parametrize(("family", "frames", "expected"), [
    (WAN, 10, 9), (WAN, 12, 13), (WAN, 163, 161), (LTX, 12, 9), (LTX, 13, 17), (LTX, 161, 161), (LTX, 262, 257),
])  # the rounding of plan_row (half to even) and one step down at the family's frame limit
def test_frames_snap_to_the_familys_rule(family: str, frames: int, expected: int) -> None:
    snapped = FAMILIES[family].snap_frames(frames)
    assert snapped == expected and FAMILIES[family].valid_frames(snapped)


def test_names_aliases_and_tiny_ids_resolve_and_unknown_names_fail() -> None:
    assert resolve_family(None).name == WAN and resolve_family("LTX-Video").name == LTX
    assert resolve_family("tiny-ltx").name == LTX and resolve_family(" wan ").name == WAN
    with pytest.raises(KeyError, match="unknown model family 'sora'"):
        resolve_family("sora")


def test_the_wan_profile_is_todays_and_the_ltx_one_has_its_grid() -> None:
    assert ModelProfile.for_family(WAN) == ModelProfile()  # the defaults were Wan's before families existed
    assert (LTX_PROFILE.size_multiple, LTX_PROFILE.frame_step, LTX_PROFILE.default_guidance_scale) == (32, 8, 3.0)


ROWS = [{"prompt": "a red fox running through snow", "width": 72, "num_frames": 12},               # 1 wan
        {"prompt": "a red fox running through snow", "width": 72, "num_frames": 12, "model": "LTX"},  # 2 ltx
        {"prompt": "a cat on a mat", "model": "sora"},                                              # 3 unknown
        {"prompt": "a cat on a mat", "model": "tiny-wan"}]                                          # 4 wan by id
CONTENT = ("\n".join(json.dumps(r) for r in ROWS) + "\n").encode()


def _validate(family_profile=None):
    return validate_rows(parse_batch(CONTENT, "jsonl"), batch_id_for("m.jsonl", CONTENT), WAN_PROFILE,
                         family_profile=family_profile)


def test_a_rows_model_picks_its_familys_grid_model_and_defaults() -> None:
    asked: list[str] = []
    outcome = _validate(lambda family: asked.append(family) or {LTX: LTX_PROFILE}[family])
    specs = {a.row: GenerationSpec.from_dict(a.spec) for a in outcome.accepted}
    assert (specs[1].model_family, specs[1].width, specs[1].num_frames, specs[1].model_id) == (WAN, 80, 13, "tiny-wan")
    assert (specs[2].model_family, specs[2].width, specs[2].num_frames) == (LTX, 64, 9)
    assert (specs[2].model_id, specs[2].model_revision, specs[2].guidance_scale) == ("tiny-ltx", "r-ltx", 3.0)
    assert specs[4].model_family == WAN and asked == [LTX]  # asked once, only for the family a row names
    (unknown,) = outcome.rejected
    assert unknown.row == 3 and unknown.stage == "schema" and "unknown model family 'sora'" in unknown.reason


def test_each_row_is_held_to_its_own_familys_frame_limit_in_a_mixed_shard() -> None:
    rows = [{"prompt": "a long fox shot", "num_frames": 257, "model": "ltx"},   # 1 within LTX's 257
            {"prompt": "a long fox shot", "num_frames": 201},                  # 2 over Wan's 161
            {"prompt": "a long fox shot", "num_frames": 300, "model": "ltx"}]  # 3 over every family's limit
    content = ("\n".join(json.dumps(r) for r in rows) + "\n").encode()
    outcome = validate_rows(parse_batch(content, "jsonl"), batch_id_for("f.jsonl", content), WAN_PROFILE,
                            family_profile={LTX: LTX_PROFILE}.__getitem__)
    assert [GenerationSpec.from_dict(a.spec).num_frames for a in outcome.accepted] == [257]
    reasons = {r.row: r.reason for r in outcome.rejected}
    assert "num_frames must be 1-161 for wan" in reasons[2] and "num_frames must be 1-257" in reasons[3]
    alone = validate_rows(parse_batch(content, "jsonl"), batch_id_for("f.jsonl", content), WAN_PROFILE)
    assert not alone.accepted  # without LTX in the deployment, Wan's contract (161) holds for the Wan row too
    assert "num_frames must be 1-161" in {r.row: r.reason for r in alone.rejected}[2]


def test_a_family_the_deployment_cannot_serve_rejects_its_rows_with_the_reason() -> None:
    outcome = _validate(None)
    reasons = {r.row: r.reason for r in outcome.rejected}
    assert "model 'ltx' is not available in this deployment" in reasons[2] and 1 in {a.row for a in outcome.accepted}


def test_a_conditioned_row_gets_the_image_model_of_its_own_family() -> None:
    outcome = _validate(lambda family: LTX_PROFILE)
    for row in outcome.accepted:
        row.metadata["image"] = "first.png"
        row.spec["conditioning"] = "image:" + "ab" * 32
    link_conditioning(outcome, lambda family: {WAN: ModelProfile(model_id="tiny-wan-i2v"),
                                               LTX: LTX_PROFILE}[family])
    models = {a.row: a.spec["model_id"] for a in outcome.accepted}
    assert models == {1: "tiny-wan-i2v", 2: "tiny-ltx", 4: "tiny-wan-i2v"}


def test_estimates_plan_a_row_on_its_familys_grid_and_price_it_with_its_prior() -> None:
    estimated = [spec for spec, _ in estimate_specs(parse_batch(CONTENT, "jsonl").to_dict(orient="records"),
                                                    WAN_PROFILE)]
    assert [(s.model_family, s.width, s.num_frames) for s in estimated] == [(WAN, 80, 13), (LTX, 64, 9), (WAN, 64, 9)]
    wan, ltx = (prior_seconds_per_step("m", 832, 480, 81, family) for family in (WAN, LTX))
    assert wan == prior_seconds_per_step("m", 832, 480, 81)  # Wan's prior is unchanged
    assert ltx == pytest.approx(wan * FAMILIES[LTX].cost_prior_scale) and ltx < wan
