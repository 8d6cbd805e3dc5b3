"""Which of a language's most frequent words a term list matches on its own.

A term written for one language can be an everyday word of another once accents are folded or inside a longer
word (Polish "góry" folds to "gory", Italian "nazionale" starts with "nazi", Korean "생성기", a generator,
contains "성기"). Every such word blocks an innocent prompt alone, so each match is reviewed once: either it
is the term's own meaning (listed in `sora_assets/safety/term_collisions_reviewed.txt`) or the term is
narrowed / the word goes into `terms.native_allow_words`. A test keeps the list complete, so a new term that
matches a frequent innocent word fails until someone looks.

The word lists come from wordfreq (the [dev] extra; its data ships in its wheel), read only here and in tests.

    python -m sora_assets.core.safety.term_collisions [--words 30000] [--new]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sora_assets.core.safety.policy_file import SafetyPolicy, load_policy

REVIEWED = Path(__file__).resolve().parents[2] / "safety" / "term_collisions_reviewed.txt"
LANGS = ("en", "es", "fr", "de", "pt", "it", "nl", "pl", "ru", "tr", "ja", "zh", "ko")


def standalone_lists(policy: SafetyPolicy) -> list[str]:
    """The term lists that block alone (a rule's any_of), except the names' (a name is meant to match)."""
    return sorted({t for c in policy.categories for r in c.rules for t in r.any_of if c.name != "real_person_likeness"})


def collisions(policy: SafetyPolicy, words_per_language: int = 30_000) -> list[tuple[str, str, str]]:
    """(language, word, term list) for every frequent word a standalone term list matches, read the way the
    pre-filter reads a prompt (its readings, innocent phrases and native allow words removed)."""
    import wordfreq

    from sora_assets.core.safety.prefilter import TextPrefilter

    prefilter = TextPrefilter(policy, embedder=None, classifier=False, semantic_head=False, language_id=False)
    lists = standalone_lists(policy)
    found = []
    for lang in LANGS:
        for word in wordfreq.top_n_list(lang, words_per_language):
            if len(word) < 2:
                continue
            joined, _ = prefilter.readings(word)
            hit = next((name for name in lists if policy.terms[name].search(joined)), None)
            if hit is not None:
                found.append((lang, word, hit))
    return found


def reviewed(path: Path = REVIEWED) -> set[tuple[str, str]]:
    """(language, word) pairs reviewed as the term's own meaning; '#' starts a comment."""
    pairs = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            pairs.add((fields[0], fields[1]))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--words", type=int, default=30_000)
    parser.add_argument("--new", action="store_true", help="only the matches not yet reviewed")
    args = parser.parse_args()
    known = reviewed() if args.new else set()
    for lang, word, term in collisions(load_policy(), args.words):
        if (lang, word) not in known:
            print(f"{lang}\t{word}\t{term}")


if __name__ == "__main__":
    main()
