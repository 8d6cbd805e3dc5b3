"""The curated public-figure list (public_figures.txt) and a word n-gram index over all its names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NAMES_PATH = Path(__file__).resolve().parents[2] / "safety" / "public_figures.txt"  # data: sora_assets/safety/


@dataclass(frozen=True)
class PublicFigure:
    name: str
    aliases: tuple[str, ...]


def load_public_figures(path: Path = NAMES_PATH) -> list[PublicFigure]:
    figures: dict[str, PublicFigure] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|") if p.strip()]
        figures.setdefault(parts[0].lower(), PublicFigure(parts[0], tuple(parts[1:])))
    return list(figures.values())


FUZZY_MIN_LENGTH = 10  # "joe bidden" (10) is found; shorter pairs collide with ordinary words too often


def _deletions(text: str) -> set[str]:
    return {text, *(text[:i] + text[i + 1:] for i in range(len(text)))}


def _one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment distance <= 1: one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return a == b
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


class NameIndex:
    """Public-figure lookup by word n-grams in a set, not a 1,800-way regex alternation (measured: the
    alternation cost more than every other rule together). A name matches as its words in sequence or
    run together ("taylorswift"); names in scripts without spaces are found as substrings."""

    def __init__(self, names: list[str], fold) -> None:  # noqa: ANN001 - fold: str -> str
        self._fuzzy: dict[str, set[str]] | None = None
        self.grams: set[str] = set()
        self.unspaced: list[str] = []
        self.longest = 1
        for name in names:
            words = [w for w in re.split(r"[\s.\-'’,]+", fold(name)) if w]
            if not words:
                continue
            if re.search(r"[\u3040-\u9fff\uac00-\ud7af]", "".join(words)):
                self.unspaced.append("".join(words))
                continue
            self.grams.add(" ".join(words))
            self.grams.add("".join(words))
            self.longest = max(self.longest, len(words))

    def fuzzy_index(self, min_length: int = FUZZY_MIN_LENGTH) -> dict[str, set[str]]:
        """Every listed name of two or more words and `min_length`+ letters, under each string one deletion
        away from it (and itself): a SymSpell-style index, so a misspelt name ("Elon Muks", "Tylor Swift")
        is found with a few set lookups instead of an edit distance to all 3,000+ names. Hand-written: the
        lock has no fuzzy-matching library and this is twenty lines."""
        if self._fuzzy is None:
            index: dict[str, set[str]] = {}
            for gram in self.grams:
                if " " in gram and len(gram) >= min_length:
                    for key in _deletions(gram):
                        index.setdefault(key, set()).add(gram)
            self._fuzzy = index
        return self._fuzzy

    def fuzzy_search(self, text: str) -> str | None:
        """A listed multi-word name one edit (insertion, deletion, substitution, swap of neighbours) from a
        word n-gram of `text`, in its first (plain folded) reading, else None."""
        index = self.fuzzy_index()
        words = re.findall(r"\w+", text.split("\x00", 1)[0])
        for i in range(len(words)):
            for n in range(2, min(self.longest, len(words) - i) + 1):
                gram = " ".join(words[i:i + n])
                if len(gram) < FUZZY_MIN_LENGTH - 1 or gram in self.grams:
                    continue
                for key in _deletions(gram):
                    for name in index.get(key, ()):
                        if _one_edit(gram, name):
                            return name
        return None

    def search(self, text: str) -> str | None:
        """The first name found in `text` (already folded), else None."""
        for reading in text.split("\x00"):
            words = re.findall(r"\w+", reading)
            for i in range(len(words)):
                for n in range(1, min(self.longest, len(words) - i) + 1):
                    gram = " ".join(words[i:i + n])
                    if gram in self.grams:
                        return gram
        return next((name for name in self.unspaced if name in text), None)


@lru_cache(maxsize=4)
def name_index(path: str, fold) -> NameIndex:  # noqa: ANN001
    return NameIndex([n for f in load_public_figures(Path(path)) for n in (f.name, *f.aliases)], fold)
