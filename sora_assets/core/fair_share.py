"""Fair share at launch: never more than `cap` free-tier shards of one account in progress at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    key: str
    tier: str
    account: str


def select_within_cap(candidates: Sequence[Candidate], in_progress: Iterable[Candidate],
                      cap: int) -> tuple[list[Candidate], list[Candidate]]:
    """(launch, held): candidates in the order given, free ones only while their account is under the cap
    counting the shards already in progress; paid shards are never held."""
    running = Counter(c.account for c in in_progress if c.tier != "paid")
    launch, held = [], []
    for candidate in candidates:
        if candidate.tier == "paid":
            launch.append(candidate)
        elif running[candidate.account] < cap:
            running[candidate.account] += 1
            launch.append(candidate)
        else:
            held.append(candidate)
    return launch, held
