"""Term lists compiled with shared leading atoms factored out match exactly what the plain alternation does."""

from __future__ import annotations

import json
import re

import pytest

from sora_assets.core.safety.policy_file import (
    _NO_BOUNDARY_SCRIPT,
    _atoms,
    _compile_terms,
    _top_level_alternatives,
    _trie_regex,
    fold,
    load_policy,
)
from sora_assets.core.safety.prefilter import default_prefilter
from sora_assets.safety.corpus import CORPUS_PATH


def plain_alternation(patterns: list[str]) -> re.Pattern[str]:
    """How the terms were compiled before the factoring (the reference it must agree with)."""
    folded = [fold(p).replace(" ", r"\s*") for p in patterns]
    bounded = "|".join(f"(?:{p})" for p in folded if not _NO_BOUNDARY_SCRIPT.search(p))
    unbounded = "|".join(f"(?:{p})" for p in folded if _NO_BOUNDARY_SCRIPT.search(p))
    parts = ([rf"(?<!\w)(?:{bounded})(?!\w)"] if bounded else []) + ([f"(?:{unbounded})"] if unbounded else [])
    return re.compile("|".join(parts) or r"(?!x)x")


@pytest.mark.parametrize(("pattern", "expected"), [
    ("a|b(?:c|d)|[|]", ["a", "b(?:c|d)", "[|]"]),
    (r"x\|y|z", [r"x\|y", "z"]),
    ("[]|]|q", ["[]|]", "q"]),
    ("only", ["only"]),
])
def test_top_level_alternatives(pattern, expected):
    assert _top_level_alternatives(pattern) == expected


@pytest.mark.parametrize(("alternative", "expected"), [
    (r"ab(?:c|d)+\w*", ["a", "b", "(?:c|d)+", r"\w*"]),
    (r"[a-z]{2,3}?x\s*?y", ["[a-z]{2,3}?", "x", r"\s*?", "y"]),
    (r"(?:a(?:b|c)\))x", [r"(?:a(?:b|c)\))", "x"]),
    (r"[^]x]y", ["[^]x]", "y"]),
    (r"(a)\1", None),  # a backreference depends on what came before: never factored
    ("a|b", None),
])
def test_atoms(alternative, expected):
    assert _atoms(alternative) == expected


def test_trie_factors_shared_leading_atoms():
    regex = _trie_regex([["n", "u", "d", "e"], ["n", "u", "d", "i", "t", "y"], ["n", "u"], ["(?:x|y)", "a"],
                         ["(?:x|y)", "b"]])
    assert regex == "(?:nu(?:d(?:e|ity))?|(?:x|y)(?:a|b))"
    compiled = re.compile(rf"^(?:{regex})$")
    assert [w for w in ["nude", "nudity", "nu", "nud", "xa", "yb", "xy", "a"] if compiled.match(w)] == \
        ["nude", "nudity", "nu", "xa", "yb"]


def test_allow_phrases_keep_their_order_because_sub_uses_it():
    # "no gore" listed first must stay the match a .sub replaces, not the longer "no gore today"
    compiled = _compile_terms("allow_phrases", ["no gore", "no gore today"])
    assert compiled.sub("_", "no gore today") == "_ today"
    assert _compile_terms("gore_terms", ["no gore", "no gore today"]).search("no gore today")


def test_every_policy_term_matches_exactly_what_the_plain_alternation_matches():
    """On every reading of a sample of the labelled corpus (all categories, languages and obfuscations)."""
    policy = load_policy()
    prefilter = default_prefilter()
    prompts = [json.loads(line)["prompt"] for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines()][::12]
    readings = [prefilter.readings(prompt)[0] for prompt in prompts]
    hits, factored, any_rule_term = 0, 0, [False] * len(readings)
    rule_terms = {t for c in policy.categories for r in c.rules for t in (*r.any_of, *r.all_of)}
    for name, patterns in policy.raw_terms.items():
        reference = plain_alternation(list(patterns))
        compiled = policy.terms[name]
        factored += compiled.pattern != reference.pattern
        expected = [reference.search(r) is not None for r in readings]
        assert [compiled.search(r) is not None for r in readings] == expected, name
        hits += sum(expected)
        if name in rule_terms:
            any_rule_term = [a or e for a, e in zip(any_rule_term, expected, strict=True)]
    assert factored >= 10  # the factoring is in use for most term lists
    assert hits > 500  # the sample exercises the terms, not only texts nothing matches
    # the union the pre-filter searches first matches exactly the readings some rule term matches
    union = prefilter._any_rule_term
    assert [union.search(r) is not None for r in readings] == any_rule_term
    assert 0 < sum(any_rule_term) < len(readings)
