"""The labelled safety corpus: generated from hand-written concepts, split once by intent.

    python -m sora_assets.safety.corpus            # writes sora_assets/safety/corpus.jsonl

Rows: id, prompt, label (unsafe | benign), category (a policy category, or null), expected (block |
hold | allow), lang, style (plain | code_switch | slang | indirect | native | leet | spaced | punct | homoglyph
| zero_width | masked | upper), intent, split (train | validation | test).

Frames: train rows are framed with `WRAPPERS`, validation and test rows with their own
`SPLIT_WRAPPERS` (never seen in train), so held-out figures are not helped by a familiar frame.

Authored rows (`authored/*.jsonl`, one file per independent author, written by people who did not write
the rules or the generator): appended after the generated rows, validated on load (`load_authored`; a
malformed row raises with file:line and the reason), deduplicated against every earlier prompt, kept
exactly as written (prompt and style; never reframed), split by intent within (category, author) groups
the same way (SHA-256 rank, 3/1/1), and tagged with `source` (the file's stem). A file is read only once
its author has marked it finished (`<stem>.done` beside it) or when it is listed in `AUTHORED_FINISHED`.

Honesty rules: every paraphrase, translation, wrapper and obfuscation of one concept shares one
`intent`, and the split is decided per intent (by the rank of its SHA-256 within its category), so no
test intent has a sibling in train or validation. Generation is seeded: the same code writes the same
file byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sora_assets.safety import corpus_data as d

CORPUS_PATH = Path(__file__).resolve().parent / "corpus.jsonl"
SEED = 20261201
SPLITS = ("train", "validation", "test")
_NO_SPACE_LANGS = ("ja", "zh")
_HOMOGLYPHS = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і", "y": "у"})
_LATIN_LOOKALIKES = str.maketrans({"а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y"})
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_STYLES = ("leet", "spaced", "punct", "homoglyph", "zero_width", "masked", "upper")
_CJK_STYLES = ("spaced", "zero_width", "punct")
AUTHORED_DIR = Path(__file__).resolve().parent / "authored"
# authored files copied finished (their author's `.done` marker is not copied with them)
AUTHORED_FINISHED = ("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12", "a13", "a14", "a15",
                     "a16", "a17", "a18", "a19", "a20", "a21", "a22", "a23", "a24", "a25", "a26", "a27", "a28",
                     "a29", "a30", "a31", "a32", "a33", "a34", "a35", "a36", "a37", "a38")
AUTHORED_KEYS = ("prompt", "label", "category", "expected", "lang", "style", "intent")
CATEGORIES = ("sexual_minors", "sexual_explicit", "violence_gore", "self_harm", "hate", "real_person_likeness")


def split_of(rank: int) -> str:
    """Rank of an intent's hash within its category -> split: 3 in 5 train, 1 validation, 1 test."""
    return {3: "validation", 4: "test"}.get(rank % 5, "train")


def _key_word(phrase: str, lang: str) -> tuple[int, int]:
    """Span of the word an obfuscation targets: the longest word, or three middle characters (ja/zh)."""
    if lang in _NO_SPACE_LANGS:
        middle = max(0, len(phrase) // 2 - 1)
        return middle, min(len(phrase), middle + 3)
    words = [(len(w), i) for i, w in enumerate(phrase.split(" "))]
    _, index = max(words)
    start = sum(len(w) + 1 for w in phrase.split(" ")[:index])
    return start, start + len(phrase.split(" ")[index])


def obfuscate(phrase: str, style: str, lang: str, rng: random.Random) -> str:
    """One obfuscation style applied to the phrase's key word (how evasive prompts are written)."""
    if style == "upper":
        return phrase.upper()
    start, end = _key_word(phrase, lang)
    word = phrase[start:end]
    if style == "leet":
        new = word.lower().translate(_LEET)
    elif style == "spaced":
        new = " ".join(word)
    elif style == "punct":
        new = rng.choice(".-_*").join(word)
    elif style == "homoglyph":  # Cyrillic lookalikes in Latin words; Latin lookalikes in Cyrillic ones
        new = word.translate(_LATIN_LOOKALIKES if lang == "ru" else _HOMOGLYPHS)
    elif style == "zero_width":
        new = "\u200b".join(word)
    elif style == "masked":
        vowels = [i for i, c in enumerate(word) if c.lower() in "aeiou" and 0 < i < len(word) - 1]
        new = word if not vowels else word[:vowels[0]] + "*" + word[vowels[0] + 1:]
    else:
        raise ValueError(style)
    return phrase[:start] + new + phrase[end:]


Frame = tuple[str, int, str]  # (frame language, index in WRAPPERS, the phrase as framed)


def _rows_for(phrase: str, lang: str, rng: random.Random, plain: int, obfuscated: int,
              code_switch: bool) -> Iterator[tuple[str, str, Frame]]:
    wrappers = list(d.WRAPPERS[lang])
    for wrapper in rng.sample(wrappers, min(plain, len(wrappers))):
        yield wrapper.format(x=phrase), "plain", (lang, wrappers.index(wrapper), phrase)
    styles = _CJK_STYLES if lang in _NO_SPACE_LANGS else _STYLES
    for style in rng.sample(styles, min(obfuscated, len(styles))):
        wrapper = rng.choice(wrappers)
        inner = obfuscate(phrase, style, lang, rng)
        yield wrapper.format(x=inner), style, (lang, wrappers.index(wrapper), inner)
    if code_switch:  # an English frame around a foreign phrase, or a foreign frame around English
        other = "en" if lang != "en" else rng.choice(d.LANGS[1:])
        wrapper = rng.choice(d.WRAPPERS[other][1:])
        yield wrapper.format(x=phrase), "code_switch", (other, d.WRAPPERS[other].index(wrapper), phrase)


def reframe(frame: Frame, split: str) -> str:
    """The prompt in its split's own frames: train keeps WRAPPERS, validation and test use frames
    train never sees (SPLIT_WRAPPERS); the bare phrase (slot 0) stays bare."""
    lang, index, inner = frame
    if split == "train" or index == 0:
        return d.WRAPPERS[lang][index].format(x=inner)
    frames = d.SPLIT_WRAPPERS[split][lang]
    return frames[(index - 1) % len(frames)].format(x=inner)


CORPUS_FIGURES = 1424  # the list's first 1,424 people (the list of 2026-12-01.3): growing it never moves the corpus


def _names() -> list[str]:
    from sora_assets.core.safety.names import load_public_figures

    return [figure.name for figure in load_public_figures()][:CORPUS_FIGURES]


# The corpus's blocks, in generation order (each draws from the shared random stream in turn, so the order is
# part of the corpus): (data, how its phrases are laid out, label, expected, plain and obfuscated rows per
# phrase, code-switched rows, intent tag; a tag other than "c" also names the style of the plain rows).
_BLOCKS = (
    ("CONCEPTS", "langs", "unsafe", "block", 3, 2, True, "c"),
    ("BENIGN", "langs", "benign", "allow", 4, 1, True, "c"),
    ("SLANG", "en", "unsafe", "block", 3, 1, False, "slang"),
    ("BENIGN_SLANG", "en", "benign", "allow", 4, 1, False, "slang"),
    ("INDIRECT", "pairs", "unsafe", "block", 2, 1, False, "indirect"),
    ("BENIGN_INDIRECT", "pairs", "benign", "allow", 2, 1, False, "indirect"),
)
# natively written gore / self-harm and their hard-benign counterparts (2026-12-01.3): last, with their own
# random stream, so every older row is generated exactly as before
_NATIVE_BLOCKS = (
    ("NATIVE", "pairs", "unsafe", "block", 2, 1, False, "native"),
    ("BENIGN_NATIVE", "pairs", "benign", "allow", 2, 1, False, "native"),
)


def _phrases(name: str, layout: str) -> Iterator[tuple[str | None, int, str, str]]:
    """(category, intent number, language, phrase) of a data block; benign blocks are lists (no category).
    Layouts: "langs" (one phrase per language of `LANGS`), "en" (English phrasings), "pairs" ((lang, phrase))."""
    data = getattr(d, name)
    for category, intents in (data.items() if isinstance(data, dict) else [(None, data)]):
        for n, intent in enumerate(intents):
            if layout == "langs":
                pairs = zip(d.LANGS, intent, strict=True)
            else:
                pairs = (("en", phrase) for phrase in intent) if layout == "en" else intent
            for lang, phrase in pairs:
                yield category, n, lang, phrase


def _block_rows(block: tuple, rng: random.Random) -> Iterator[dict[str, Any]]:
    name, layout, label, expected, plain, obfuscated, code_switch, tag = block
    for category, n, lang, phrase in _phrases(name, layout):
        for prompt, style, frame in _rows_for(phrase, lang, rng, plain=plain, obfuscated=obfuscated,
                                              code_switch=code_switch):
            yield _row(prompt, label, category, expected, lang, tag if tag != "c" and style == "plain" else style,
                       f"{category or 'benign'}/{tag}{n:02d}", frame)


def _row(prompt: str, label: str, category: str | None, expected: str, lang: str, style: str, intent: str,
         frame: Frame | None = None) -> dict[str, Any]:
    return {"prompt": prompt, "label": label, "category": category, "expected": expected, "lang": lang,
            "style": style, "intent": intent, "frame": frame}


def _likeness_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    """Public figures: a sample of the curated list in likeness contexts (block), private-looking full names
    in the same contexts (hold), and the contexts without anyone (allow)."""
    for name in rng.sample(_names(), 120):
        for context in rng.sample(d.LIKENESS, 2):
            yield _row(context.format(n=name), "unsafe", "real_person_likeness", "block", _context_lang(context),
                       "plain", f"figure/{name}")
    for given in d.UNKNOWN_GIVEN:
        for surname in rng.sample(d.UNKNOWN_SURNAMES, 3):
            context = rng.choice(d.LIKENESS)
            yield _row(context.format(n=f"{given} {surname}"), "unsafe", "real_person_likeness", "hold",
                       _context_lang(context), "plain", f"private/{given}")
    for n, context in enumerate(d.LIKENESS_BENIGN):
        yield _row(context, "benign", None, "allow", _context_lang(context), "plain", f"benign/likeness{n:02d}")


class AuthoredRowError(ValueError):
    """A malformed authored row: the message names the file, the line and the reason."""


def _check_authored(raw: Any, where: str) -> dict[str, Any]:
    def fail(reason: str) -> AuthoredRowError:
        return AuthoredRowError(f"{where}: {reason}")

    if not isinstance(raw, dict):
        raise fail("not a JSON object")
    if set(raw) != set(AUTHORED_KEYS):
        missing, unknown = sorted(set(AUTHORED_KEYS) - set(raw)), sorted(set(raw) - set(AUTHORED_KEYS))
        raise fail(f"keys: missing {missing}, unknown {unknown}")
    for key in ("prompt", "lang", "style", "intent"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise fail(f"{key} must be a non-empty string, got {raw[key]!r}")
    if raw["label"] not in ("unsafe", "benign"):
        raise fail(f"label must be unsafe or benign, got {raw['label']!r}")
    if raw["lang"] not in d.LANGS:
        raise fail(f"lang {raw['lang']!r} is not a covered language {d.LANGS}")
    if raw["label"] == "benign":
        if raw["category"] is not None or raw["expected"] != "allow":
            raise fail(f"a benign row has category null and expected allow, got {raw['category']!r} / "
                       f"{raw['expected']!r}")
    else:
        if raw["category"] not in CATEGORIES:
            raise fail(f"category {raw['category']!r} is not one of {CATEGORIES}")
        if raw["expected"] not in ("block", "hold"):
            raise fail(f"an unsafe row's expected is block or hold, got {raw['expected']!r}")
    return {key: raw[key] for key in AUTHORED_KEYS}


def authored_files(folder: Path = AUTHORED_DIR) -> list[Path]:
    """The finished authored files, in natural name order (a2 before a10: a new author's rows go last, so
    no earlier row's id moves)."""
    def natural(path: Path) -> list[int | str]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]
    return [p for p in sorted(folder.glob("*.jsonl"), key=natural)
            if p.stem in AUTHORED_FINISHED or p.with_suffix(".done").exists()]


def load_authored(paths: list[Path] | None = None) -> list[dict[str, Any]]:
    """Authored rows, validated (raises AuthoredRowError with file:line and the reason), each tagged with its
    `source` (the file's stem: one author a file)."""
    rows = []
    for path in authored_files() if paths is None else paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as error:
                raise AuthoredRowError(f"{where}: not JSON ({error.msg})") from None
            rows.append({**_check_authored(raw, where), "source": path.stem})
    return rows


def _dedup_key(prompt: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def _authored_rows(existing: list[dict[str, Any]], authored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Authored rows not already in the corpus (compared case- and space-insensitively), split by intent:
    within each (category, author) group intents are ranked by SHA-256 and dealt 3/1/1. An intent id is
    scoped to its author; an intent that appears under two categories takes the split of its first."""
    seen = {_dedup_key(r["prompt"]) for r in existing}
    rows = []
    for row in authored:
        key = _dedup_key(row["prompt"])
        if key not in seen:
            seen.add(key)
            rows.append(dict(row))
    groups: dict[tuple[str, str], list[str]] = {}
    group_of: dict[tuple[str, str], tuple[str, str]] = {}
    for row in rows:
        intent = (row["source"], row["intent"])
        if intent not in group_of:
            group_of[intent] = (row["category"] or "benign", row["source"])
            groups.setdefault(group_of[intent], []).append(row["intent"])
    split: dict[tuple[str, str], str] = {}
    for (_, source), intents in groups.items():
        ranked = sorted(intents, key=lambda i: hashlib.sha256(f"{source}/{i}".encode()).hexdigest())
        split.update({(source, intent): split_of(rank) for rank, intent in enumerate(ranked)})
    for row in rows:
        row["split"] = split[(row["source"], row["intent"])]
    return rows


def generate(authored: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The generated rows (byte-identical to before the authored files), then the authored rows (the
    finished files under `authored/` unless given)."""
    rng, native_rng = random.Random(SEED), random.Random(SEED + 3)
    rows = [row for block in _BLOCKS for row in _block_rows(block, rng)]
    rows += _likeness_rows(rng)
    rows += [row for block in _NATIVE_BLOCKS for row in _block_rows(block, native_rng)]
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["prompt"], row)  # a prompt generated twice keeps its first label
    held_out: dict[str, dict[str, Any]] = {}
    for row in assign_splits(list(unique.values())):  # validation and test rows in their own frames
        frame = row.pop("frame")
        if frame is not None:
            row["prompt"] = reframe(frame, row["split"])
        held_out.setdefault(row["prompt"], row)  # a duplicate the reframing makes is dropped
    rows = list(held_out.values())
    rows += _authored_rows(rows, load_authored() if authored is None else authored)
    for index, row in enumerate(rows):
        row["id"] = f"s{index:05d}"
    return rows


def _context_lang(context: str) -> str:
    for lang, marker in (("es", "vídeo realista"), ("fr", "images d'actualité"), ("de", "fotorealistisch"),
                         ("ja", "の"), ("zh", "的")):
        if marker in context:
            return lang
    return "en"


def assign_splits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split by intent: within each category (benign counts as one), intents sorted by SHA-256 and dealt
    3/1/1 to train/validation/test, so every category appears in every split."""
    by_category: dict[str, set[str]] = {}
    for row in rows:  # the native intents (2026-12-01.3) are ranked on their own, so no older intent moved
        group = "/native" if "/native" in row["intent"] else ""
        by_category.setdefault((row["category"] or "benign") + group, set()).add(row["intent"])
    split = {}
    for intents in by_category.values():
        ranked = sorted(intents, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        split.update({intent: split_of(rank) for rank, intent in enumerate(ranked)})
    for index, row in enumerate(rows):
        row["split"] = split[row["intent"]]
        row["id"] = f"s{index:05d}"
    return rows


def write(path: Path = CORPUS_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in generate():
            keys = ("id", "split", "label", "category", "expected", "lang", "style", "intent", "prompt")
            out.write(json.dumps({k: row[k] for k in keys + (("source",) if "source" in row else ())},
                                 ensure_ascii=False) + "\n")
    return path


def load(path: Path = CORPUS_PATH, split: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


if __name__ == "__main__":
    written = write()
    rows = load(written)
    from collections import Counter

    print(written, len(rows), Counter((r["split"], r["label"]) for r in rows))
