"""The public-figure index: exact names and aliases, and (policy 2026-12-01.8) a listed multi-word name
misspelt by one edit."""

from __future__ import annotations

import pytest

from sora_assets.core.safety.names import NAMES_PATH, _one_edit, name_index
from sora_assets.core.safety.policy_file import fold, load_policy
from sora_assets.core.safety.prefilter import TextPrefilter


@pytest.mark.parametrize(("a", "b", "close"), [
    ("taylor swift", "tylor swift", True),  # a deletion
    ("emmanuel macron", "emmanuel macorn", True),  # two neighbours swapped
    ("joe biden", "joe bidem", True),  # a substitution
    ("joe biden", "joe bidens", True),  # an insertion
    ("joe biden", "jim biden", False),  # two substitutions
    ("abc", "acd", False),  # shares a one-deletion key, but is two edits away
])
def test_one_edit_is_the_optimal_string_alignment_distance_of_one(a, b, close):
    assert _one_edit(a, b) is close and _one_edit(b, a) is close


def test_a_misspelt_listed_name_is_found_and_ordinary_pairs_are_not():
    index = name_index(str(NAMES_PATH), fold)
    assert index.fuzzy_search(fold("a realistic video of tylor swift crying on stage")) == "taylor swift"
    assert index.fuzzy_search(fold("emmanuel macorn arrested outside the elysee")) == "emmanuel macron"
    for prompt in ("a chef cuts bread in the kitchen", "new york city at night", "a golden retriever on a beach",
                   "the northern lights over a frozen lake"):
        assert index.fuzzy_search(fold(prompt)) is None, prompt


def test_the_policy_blocks_a_misspelt_name_as_likeness():
    policy = load_policy()
    assert policy.likeness.get("one_edit_names") is True
    decision = TextPrefilter(policy, None, classifier=False, language_id=False, semantic_head=False).check(
        "hidden camera footage of Tylor Swift shoplifting")
    assert decision.blocked and decision.category == "real_person_likeness"
    assert decision.rule == "names:public_figures:one_edit"
