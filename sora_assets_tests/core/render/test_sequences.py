"""Shot groups: anchoring rules, order, continuation links, edit decisions and stitching arithmetic."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from sora_assets.core.intake.batch_files import batch_id_for, parse_batch
from sora_assets.core.intake.prompt_rules import ModelProfile
from sora_assets.core.intake.validation import link_conditioning, needs_conditioned_model, validate_rows
from sora_assets.core.render.sequences import (
    altered_words,
    crossfade_frames,
    edit_decision,
    environment_of,
    sequence_key,
    stitch,
)
from sora_assets.core.render.spec import GenerationSpec, derive_seed

PROFILE = ModelProfile()
I2V = dataclasses.replace(PROFILE, model_id="tiny-wan-i2v", revision="i2v-rev")
ENV = "Interior Victorian library, dust motes in volumetric god rays, mahogany bookshelves"
STREET = "A rainy neon street at night, wet asphalt reflections"
ROWS = [
    # 1-3 "library": shot numbers out of row order, a chain of continuations
    {"prompt": ENV, "shot_group": "library", "anchor": True, "shot": 1, "seed": 42},
    {"prompt": f"Low angle pan left. {ENV}", "shot_group": "library", "shot": 3, "continue_from": 2},
    {"prompt": f"Medium tracking shot, 50mm lens. {ENV}", "shot_group": "library", "shot": 2,
     "continue_from": "previous"},
    # 4-5 "altered": one adjective of the environment changed
    {"prompt": STREET, "shot_group": "altered", "anchor": "yes"},
    {"prompt": "Close up. A rainy neon street at night, dry asphalt reflections", "shot_group": "altered"},
    # 6-7 two anchors
    {"prompt": STREET, "shot_group": "two", "anchor": True},
    {"prompt": f"Wide. {STREET}", "shot_group": "two", "anchor": True},
    # 8-9 a shot that contradicts the anchor's seed and size
    {"prompt": STREET, "shot_group": "clash", "anchor": True, "seed": 5},
    {"prompt": f"Dolly in. {STREET}", "shot_group": "clash", "seed": 6, "width": 128},
    # 10-11 the anchor fails the contract: its shots cannot be anchored
    {"prompt": STREET, "shot_group": "broken", "anchor": True, "steps": "many"},
    {"prompt": f"Tilt up. {STREET}", "shot_group": "broken"},
    # 12-14 a blocked source shot takes its continuation with it
    {"prompt": STREET, "shot_group": "cascade", "anchor": True},
    {"prompt": f"blood spatter on the walls. {STREET}", "shot_group": "cascade"},
    {"prompt": f"Pan right. {STREET}", "shot_group": "cascade", "continue_from": "previous"},
    # 15-17 continuation mistakes: unknown shot, anchor continuing, image plus continuation
    {"prompt": STREET, "shot_group": "bad-links", "anchor": True, "continue_from": True},
    {"prompt": f"Crane up. {STREET}", "shot_group": "bad-links", "continue_from": 9},
    {"prompt": f"Whip pan. {STREET}", "shot_group": "bad-links", "continue_from": 1, "image": "frame.png"},
    # 18 a sequence field without a group; 19-20 shot numbers given for only some rows
    {"prompt": "a lone lighthouse", "anchor": True},
    {"prompt": STREET, "shot_group": "partial", "shot": 1},
    {"prompt": f"Zoom. {STREET}", "shot_group": "partial"},
    # 21-22 no anchor marked: the first shot is the master; size inherited, seed derived from the master
    {"prompt": STREET, "shot_group": "implicit", "width": 96, "tier": "paid"},
    {"prompt": f"Arc shot. {STREET}", "shot_group": "implicit"},
]
CONTENT = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
BATCH_ID = batch_id_for("shots.jsonl", CONTENT)


@pytest.fixture(scope="module")
def outcome():
    return validate_rows(parse_batch(CONTENT, "jsonl"), BATCH_ID, PROFILE)


def _accepted(outcome, row):
    return next(a for a in outcome.accepted if a.row == row)


def _reason(outcome, row):
    return next(r for r in outcome.rejected if r.row == row).reason


def test_every_row_lands_once_and_the_right_rows_pass(outcome):
    assert sorted([a.row for a in outcome.accepted] + [r.row for r in outcome.rejected]) == list(range(1, 23))
    assert sorted(a.row for a in outcome.accepted) == [1, 2, 3, 4, 8, 12, 21, 22]


def test_shots_reuse_the_anchor_seed_and_are_ordered_by_shot_number(outcome):
    shots = {a.row: a.shot for a in outcome.accepted if a.shot and a.shot["group"] == "library"}
    assert {row: s["shot"] for row, s in shots.items()} == {1: 1, 2: 3, 3: 2}
    assert all(_accepted(outcome, row).spec["seed"] == 42 for row in shots)
    assert shots[1]["anchor"] and not shots[3]["anchor"]
    assert shots[3]["camera_action"] == "Medium tracking shot, 50mm lens"
    assert shots[3]["continue_from_row"] == 1 and shots[2]["continue_from_row"] == 3


def test_altered_environment_text_names_the_shot_and_the_words(outcome):
    reason = _reason(outcome, 5)
    assert "shot group 'altered'" in reason and "shot 2 (row 5) alters the anchored environment text" in reason
    assert "'wet' became 'dry'" in reason


def test_exactly_one_anchor(outcome):
    for row in (6, 7):
        assert "2 anchor rows (6, 7); exactly one is allowed" in _reason(outcome, row)


def test_contradicting_seed_and_size_are_errors(outcome):
    reason = _reason(outcome, 9)
    assert "sets seed 6, but shots reuse the anchor's seed 5" in reason
    assert "sets width 128, but its anchor uses 64" in reason


def test_a_rejected_anchor_rejects_its_shots(outcome):
    assert "steps must be an integer" in _reason(outcome, 10)
    assert "its anchor row 10 was rejected" in _reason(outcome, 11)


def test_a_blocked_source_shot_takes_its_continuation_along(outcome):
    assert next(r for r in outcome.rejected if r.row == 13).stage == "prefilter"
    rejected = next(r for r in outcome.rejected if r.row == 14)
    assert rejected.stage == "shot_group" and "its source shot (row 13) was rejected" in rejected.reason
    assert _accepted(outcome, 12).shot["anchor"]


def test_continuation_mistakes(outcome):
    assert "the anchor (shot 1) cannot continue another shot" in _reason(outcome, 15)
    assert "continues from shot 9, which is not an earlier shot" in _reason(outcome, 16)
    assert "sets both image and continue_from" in _reason(outcome, 17)


def test_sequence_fields_need_a_group_and_shot_numbers_all_or_none(outcome):
    assert "anchor needs a shot_group" in _reason(outcome, 18)
    for row in (19, 20):
        assert "give every shot a `shot` number, or none" in _reason(outcome, row)


def test_unmarked_group_anchors_on_its_first_shot_and_inherits_size_and_tier(outcome):
    master, shot = _accepted(outcome, 21), _accepted(outcome, 22)
    assert master.shot["anchor"] and not shot.shot["anchor"] and shot.shot["anchor_row"] == 21
    assert master.spec["seed"] == shot.spec["seed"] == derive_seed(STREET)
    assert shot.spec["width"] == 96 and shot.tier == "paid"
    assert shot.shot["camera_action"] == "Arc shot"


def test_link_conditioning_swaps_the_model_and_chains_cache_keys(outcome):
    linked = dataclasses.replace(outcome, accepted=[dataclasses.replace(a, spec=dict(a.spec))
                                                    for a in outcome.accepted])
    assert needs_conditioned_model(linked)
    link_conditioning(linked, I2V)
    anchor, shot2, shot3 = (_accepted(linked, row) for row in (1, 3, 2))
    assert anchor.spec["model_id"] == "tiny-wan" and anchor.spec.get("conditioning") is None
    assert shot2.spec["model_id"] == shot3.spec["model_id"] == "tiny-wan-i2v"
    assert shot2.spec["conditioning"] == f"last_frame:{GenerationSpec.from_dict(anchor.spec).cache_key()}"
    # shot 3 names shot 2's *final* key (after shot 2 itself became conditioned)
    assert shot3.spec["conditioning"] == f"last_frame:{GenerationSpec.from_dict(shot2.spec).cache_key()}"
    with pytest.raises(ValueError, match="image-to-video model"):
        link_conditioning(dataclasses.replace(outcome, accepted=list(outcome.accepted)), None)


def test_edit_decision_list_lines(outcome):
    lines = {a.row: edit_decision(_shot_ref(a), a.clip_id, a.row, a.spec, a.metadata.get("image"))
             for a in outcome.accepted if a.shot and a.shot["group"] == "library"}
    assert lines[1]["reference"] == "text prompt only" and lines[1]["camera_action"] == "(anchor framing)"
    assert lines[3]["shot_id"] == "library/02"
    assert lines[3]["reference"] == "shot 1 seed + environment + last frame of shot 1"
    assert lines[2]["reference"] == "shot 1 seed + environment + last frame of shot 2"
    assert lines[2]["duration_s"] == pytest.approx(9 / 8) and lines[2]["seed"] == 42


def _shot_ref(row):
    from sora_assets.core.render.sequences import ShotRef

    return ShotRef(**row.shot)


def test_environment_and_diff_helpers():
    assert environment_of(f"Static wide, 24mm. {ENV}", "Static wide, 24mm") == ENV
    assert environment_of(ENV, None) == ENV
    assert altered_words("a b c d", "x. a b d") == "'c' is missing"
    assert altered_words("a b c", "a b z c") == "'z' was inserted inside it"


@pytest.mark.parametrize(("fps", "shortest", "expected"), [(8, 9, 2), (16, 81, 4), (24, 81, 6), (8, 2, 1), (8, 1, 0)])
def test_crossfade_length(fps, shortest, expected):
    assert crossfade_frames(fps, shortest) == expected


def test_stitch_frame_count_and_linear_crossfade():
    a = np.full((9, 4, 6, 3), 0, np.uint8)
    b = np.full((9, 4, 6, 3), 90, np.uint8)
    c = np.full((5, 4, 6, 3), 180, np.uint8)
    out = stitch([a, b, c], crossfade=2)
    assert out.shape == (9 + 9 + 5 - 2 * 2, 4, 6, 3) and out.dtype == np.uint8
    # the first cut blends frames 7-8 of a into frames 0-1 of b at 1/3 and 2/3
    assert [int(out[i, 0, 0, 0]) for i in range(6, 10)] == [0, 30, 60, 90]
    # the second cut starts at 9 + 9 - 2 - 2 = 14
    assert [int(out[i, 0, 0, 0]) for i in (13, 14, 15, 16)] == [90, 120, 150, 180]
    assert stitch([a, b], crossfade=0).shape[0] == 18


def test_stitch_refuses_mismatched_or_too_short_shots():
    with pytest.raises(ValueError, match="frame size"):
        stitch([np.zeros((3, 4, 4, 3), np.uint8), np.zeros((3, 8, 4, 3), np.uint8)], 1)
    with pytest.raises(ValueError, match="longer"):
        stitch([np.zeros((3, 4, 4, 3), np.uint8), np.zeros((2, 4, 4, 3), np.uint8)], 2)


def test_sequence_key_depends_on_shots_order_and_cut():
    keys = {sequence_key(["a", "b"], 2, 8), sequence_key(["b", "a"], 2, 8), sequence_key(["a", "b"], 1, 8),
            sequence_key(["a", "b"], 2, 16)}
    assert len(keys) == 4
