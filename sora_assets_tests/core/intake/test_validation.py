"""Shard validation end to end: parse errors, types, the GE contract, pre-filter, planning."""

from __future__ import annotations

import json

import pytest

from sora_assets.core.intake.batch_files import batch_id_for, parse_batch
from sora_assets.core.intake.expectations import _suite_definition
from sora_assets.core.intake.prompt_rules import ModelProfile, PromptLimits
from sora_assets.core.intake.validation import PROMPT_EXCERPT_CHARS, clip_id_for, validate_rows
from sora_assets.core.render.spec import GenerationSpec, derive_seed
from sora_assets.core.safety.prefilter import prompt_fingerprint

PROFILE = ModelProfile()
LONG_PROMPT = "a very long and winding description of a mountain road " * 5

LINES = [
    json.dumps({"prompt": "a red fox running  through snow", "id": "fox", "tier": "PAID", "seed": 7,
                "width": 70, "shot_group": "g1", "camera": "drone"}),                     # 1 accepted
    '{"prompt": "broken json',                                                          # 2 parse
    json.dumps({"prompt": "a cat on a mat", "width": "abc"}),                           # 3 schema
    json.dumps({"prompt": "ab"}),                                                       # 4 expectations
    json.dumps({"prompt": "blood spatter on the walls", "id": "gory"}),                 # 5 prefilter
    json.dumps({"prompt": "a dog in a park", "id": "fox"}),                             # 6 duplicate id
    json.dumps({"prompt": "a lighthouse at dusk", "tier": "gold"}),                     # 7 expectations
    json.dumps({"prompt": "a quiet forest", "width": 5000, "steps": 0}),                # 8 expectations x2
    json.dumps({"prompt": "a quiet forest at night"}),                                  # 9 accepted
    json.dumps({"prompt": LONG_PROMPT, "seed": True}),                                  # 10 schema
    json.dumps({"prompt": "a swan on a lake", "seed": -1}),                              # 11 expectations
    json.dumps({"prompt": "a swan on a lake", "num_frames": "10", "fps": "12", "guidance_scale": "0"}),  # 12
]
CONTENT = ("\n".join(LINES) + "\n").encode()
BATCH_ID = batch_id_for("demo.jsonl", CONTENT)


@pytest.fixture(scope="module")
def outcome():
    return validate_rows(parse_batch(CONTENT, "jsonl"), BATCH_ID, PROFILE)


def _accepted(outcome, row):
    return next(a for a in outcome.accepted if a.row == row)


def _rejected(outcome, row):
    return next(r for r in outcome.rejected if r.row == row)


def test_every_row_is_accepted_or_rejected_once(outcome):
    rows = sorted([a.row for a in outcome.accepted] + [r.row for r in outcome.rejected])
    assert rows == list(range(1, len(LINES) + 1))
    assert sorted(a.row for a in outcome.accepted) == [1, 9, 12]


def test_clip_ids(outcome):
    assert clip_id_for("b-abc", 7) == "b-abc-r00007"
    assert [a.clip_id for a in outcome.accepted] == [f"{BATCH_ID}-r00001", f"{BATCH_ID}-r00009",
                                                     f"{BATCH_ID}-r00012"]


def test_accepted_row_plan(outcome):
    fox = _accepted(outcome, 1)
    assert fox.source_id == "fox"
    assert fox.tier == "paid" and fox.complexity == "medium"
    spec = GenerationSpec.from_dict(fox.spec)
    assert spec.prompt == "a red fox running through snow"
    assert spec.seed == 7 and not fox.seed_derived
    assert spec.width == 64 and spec.steps == 50
    assert any("snapped" in w for w in fox.warnings)
    assert fox.metadata == {"camera": "drone", "shot_group": "g1"}


def test_accepted_row_with_defaults_and_derived_seed(outcome):
    forest = _accepted(outcome, 9)
    assert forest.source_id is None and forest.tier == "free"
    assert forest.seed_derived
    assert forest.spec["seed"] == derive_seed("a quiet forest at night")
    assert forest.spec["steps"] == 30
    assert forest.warnings == [] and forest.metadata == {}


def test_text_numbers_are_coerced_and_snapped(outcome):
    swan = _accepted(outcome, 12)
    assert swan.spec["num_frames"] == 9 and swan.spec["fps"] == 12
    assert swan.spec["guidance_scale"] == 0.0
    assert any("num_frames" in w for w in swan.warnings)


def test_parse_error_row(outcome):
    rejected = _rejected(outcome, 2)
    assert rejected.stage == "parse"
    assert "line 2" in rejected.reason and "invalid JSON" in rejected.reason
    assert rejected.prompt_sha256 is None and rejected.prompt_excerpt is None
    assert "prompt is required" not in rejected.reason  # GE failures of a parse-error row are not added


def test_schema_error_row(outcome):
    rejected = _rejected(outcome, 3)
    assert rejected.stage == "schema"
    assert "width must be an integer" in rejected.reason
    assert rejected.prompt_excerpt == "a cat on a mat"
    assert rejected.prompt_sha256 == prompt_fingerprint("a cat on a mat")
    assert rejected.category is None


def test_expectation_failures(outcome):
    short = _rejected(outcome, 4)
    assert short.stage == "expectations" and "prompt length" in short.reason
    gold = _rejected(outcome, 7)
    assert gold.stage == "expectations" and "tier must be one of" in gold.reason
    big = _rejected(outcome, 8)
    assert big.stage == "expectations"
    assert "width must be" in big.reason and "steps must be" in big.reason and "; " in big.reason
    negative_seed = _rejected(outcome, 11)
    assert negative_seed.stage == "expectations" and "seed must be" in negative_seed.reason


def test_blocked_prompt_keeps_only_its_hash(outcome):
    blocked = _rejected(outcome, 5)
    assert blocked.stage == "prefilter"
    assert blocked.category == "violence_gore"
    assert blocked.prompt_excerpt is None
    assert blocked.prompt_sha256 == prompt_fingerprint("blood spatter on the walls")
    assert "blood" not in blocked.reason
    assert blocked.source_id == "gory"
    assert outcome.blocked == [blocked]


def test_duplicate_id_rejects_the_later_row(outcome):
    assert _accepted(outcome, 1).source_id == "fox"
    duplicate = _rejected(outcome, 6)
    assert duplicate.stage == "schema"
    assert "duplicate id" in duplicate.reason and "row 1" in duplicate.reason


def test_excerpt_is_truncated(outcome):
    rejected = _rejected(outcome, 10)
    assert rejected.stage == "schema" and "boolean" in rejected.reason
    assert rejected.prompt_excerpt == " ".join(LONG_PROMPT.split())[:PROMPT_EXCERPT_CHARS]
    assert len(rejected.prompt_excerpt) == PROMPT_EXCERPT_CHARS


def test_expectation_statistics(outcome):
    total = len(_suite_definition(PROFILE, PromptLimits()))
    assert outcome.expectations_evaluated == total
    assert outcome.expectations_successful < total  # prompt length, tier, width, steps, seed failed


def test_clean_csv_batch_passes_every_expectation():
    content = b"prompt,seed,tier,width,height,num_frames\na harbour at dawn,5,free,64,64,9\n" \
              b"a harbour at dusk,,paid,128,96,17\n"
    outcome = validate_rows(parse_batch(content, "csv"), "harbour-0123456789", PROFILE)
    assert outcome.rejected == []
    assert outcome.expectations_successful == outcome.expectations_evaluated > 0
    first, second = outcome.accepted
    assert first.spec["seed"] == 5 and not first.seed_derived
    assert second.seed_derived and second.tier == "paid"
    assert (second.spec["width"], second.spec["height"], second.spec["num_frames"]) == (128, 96, 17)
    assert second.clip_id == "harbour-0123456789-r00002"


def test_custom_limits_are_applied():
    content = b'{"prompt": "a lighthouse at dusk", "fps": 30}\n'
    strict = validate_rows(parse_batch(content, "jsonl"), "b-1", PROFILE, limits=PromptLimits(max_fps=24))
    relaxed = validate_rows(parse_batch(content, "jsonl"), "b-1", PROFILE)
    assert [r.stage for r in strict.rejected] == ["expectations"]
    assert "fps must be 1-24" in strict.rejected[0].reason
    assert len(relaxed.accepted) == 1


def test_an_over_long_prompt_is_rejected_for_its_length_unscreened_and_without_its_text():
    """A 1 MB prompt used to go through the whole pre-filter (92 s of embedding and name search) only to be
    rejected for its length; now it is rejected by the length rule alone and its text is never kept."""
    from sora_assets.core.safety.prefilter import default_prefilter

    screened: list[str] = []
    prefilter = default_prefilter()

    class Spy:
        policy = prefilter.policy

        def check_many(self, prompts: list[str]) -> list:
            screened.extend(prompts)
            return prefilter.check_many(prompts)

    huge = "blood spatter on the walls, " + "fox " * 262_144
    content = (json.dumps({"prompt": "a red fox in the snow"}) + "\n" + json.dumps({"prompt": huge}) + "\n").encode()
    outcome = validate_rows(parse_batch(content, "jsonl"), "b-2", PROFILE, prefilter=Spy())
    assert [a.row for a in outcome.accepted] == [1]
    (rejected,) = outcome.rejected
    assert rejected.row == 2 and rejected.stage == "expectations" and "prompt length must be 3-2000" in rejected.reason
    assert rejected.prompt_excerpt is None and rejected.prompt_sha256 == prompt_fingerprint(" ".join(huge.split()))
    assert screened == ["a red fox in the snow"]
    # at the limit it is still screened (and this one is blocked)
    edge = "blood spatter on the walls " + "x" * (2000 - 27)
    at_limit = validate_rows(parse_batch(json.dumps({"prompt": edge}).encode() + b"\n", "jsonl"), "b-3", PROFILE,
                             prefilter=Spy())
    assert len(edge) == 2000 and screened[-1] == edge and at_limit.rejected[0].stage == "prefilter"
