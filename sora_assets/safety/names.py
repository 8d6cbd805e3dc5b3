"""The curated public-figure list (public_figures.txt) and one compiled pattern over all its names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NAMES_PATH = Path(__file__).resolve().parent / "public_figures.txt"


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


def name_pattern_source(name: str, fold) -> str:  # noqa: ANN001 - fold: the prefilter's reading function
    """A name as a regex over a de-obfuscated reading: its parts may run together or be spaced out."""
    parts = [re.escape(p) for p in re.split(r"[\s.\-'’,]+", fold(name)) if p]
    return r"[\s.\-']*".join(parts)


@lru_cache(maxsize=4)
def names_regex(path: str, fold) -> re.Pattern[str]:  # noqa: ANN001
    """One alternation over every name and alias (longest first), bounded like a word where the name
    starts and ends with a letter; CJK names are matched anywhere."""
    sources = {name_pattern_source(n, fold) for f in load_public_figures(Path(path)) for n in (f.name, *f.aliases)}
    body = "|".join(sorted((s for s in sources if s), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)|(?:{body})(?=[\u3040-\u9fff\uac00-\ud7af])")
