"""Issue 18: independently authored prompt rows join the corpus: validated on load, deduplicated, kept as
written, split by intent within (category, author), appended after the generated rows."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sora_assets.safety.corpus import (
    AUTHORED_KEYS,
    AuthoredRowError,
    _authored_rows,
    authored_files,
    load,
    load_authored,
)

GOOD = {"prompt": "a dog on a beach", "label": "benign", "category": None, "expected": "allow", "lang": "en",
        "style": "plain", "intent": "x-1"}


def _write(tmp_path, rows: list) -> object:
    path = tmp_path / "a9.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("bad", "reason"), [
    ({**GOOD, "colour": "red"}, "unknown ['colour']"),
    ({k: v for k, v in GOOD.items() if k != "intent"}, "missing ['intent']"),
    ({**GOOD, "label": "maybe"}, "label must be"),
    ({**GOOD, "lang": "xx"}, "lang 'xx'"),
    ({**GOOD, "category": "hate"}, "benign row"),
    ({**GOOD, "label": "unsafe", "category": "weapons", "expected": "block"}, "category 'weapons'"),
    ({**GOOD, "label": "unsafe", "category": "hate", "expected": "allow"}, "expected is block or hold"),
    ({**GOOD, "prompt": "  "}, "prompt must be"),
    ("{not json", "not JSON"),
])
def test_a_malformed_authored_row_raises_with_file_line_and_reason(tmp_path, bad, reason):
    path = _write(tmp_path, [GOOD, "", bad])
    with pytest.raises(AuthoredRowError, match=r"a9\.jsonl:3: ") as error:
        load_authored([path])
    assert reason in str(error.value)


def test_authored_rows_are_deduplicated_kept_as_written_and_split_by_intent(tmp_path):
    rows = [{**GOOD, "prompt": f"prompt {i} of intent {i % 40}", "intent": f"x-{i % 40}", "style": "narrative"}
            for i in range(200)]
    rows.append({**GOOD, "prompt": "A  DOG on a beach", "intent": "x-99"})  # a duplicate of an existing prompt
    loaded = load_authored([_write(tmp_path, rows)])
    out = _authored_rows([{"prompt": "a dog on a beach"}], loaded)
    assert len(out) == 200 and all(r["style"] == "narrative" and r["source"] == "a9" for r in out)
    assert [r["prompt"] for r in out] == [r["prompt"] for r in rows[:200]]  # never reframed, order kept
    splits_of: dict[str, set[str]] = {}
    for row in out:
        splits_of.setdefault(row["intent"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert Counter(next(iter(s)) for s in splits_of.values()) == {"train": 24, "validation": 8, "test": 8}


def test_committed_corpus_holds_the_authored_rows_after_the_generated_ones():
    corpus = load()
    authored = [r for r in corpus if "source" in r]
    files = authored_files()
    assert files and {r["source"] for r in authored} == {p.stem for p in files}
    first = next(i for i, r in enumerate(corpus) if "source" in r)
    assert all("source" in r for r in corpus[first:]) and first == 7401  # the generated rows come first
    assert [r["id"] for r in corpus] == [f"s{i:05d}" for i in range(len(corpus))]
    assert {k for r in authored for k in r} == {*AUTHORED_KEYS, "id", "split", "source"}
    splits_of: dict[str, set[str]] = {}
    for row in corpus:
        splits_of.setdefault(row["intent"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    for source in {r["source"] for r in authored}:  # every (category, author) group reaches every split
        for category in {r["category"] for r in authored if r["source"] == source}:
            assert {r["split"] for r in authored if r["source"] == source and r["category"] == category} == \
                {"train", "validation", "test"}, (source, category)
