"""Fair share at launch, work-conserving: an account's free shards beyond `cap` in progress are held only
while another account has work waiting; an account alone fills every idle GPU."""

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
                      cap: int, idle_gpus: int | None = None) -> tuple[list[Candidate], list[Candidate]]:
    """(launch, held): candidates in the order given (paid first is the caller's order); paid shards are
    never held; a free one is launched while its account has fewer than `cap` in progress.

    Beyond the cap a free shard waits only while no GPU is idle: over-cap shards take at most `idle_gpus`
    GPUs (those neither in-progress runs nor this pass's launches use; None: none), accounts taken in
    turn, so one studio alone fills every idle GPU while a studio that submits later is not queued
    behind a backlog it cannot overtake.
    """
    in_progress = list(in_progress)
    running = Counter(c.account for c in in_progress if c.tier != "paid")
    launch, over_cap = [], []
    for candidate in candidates:
        if candidate.tier == "paid":
            launch.append(candidate)
        elif running[candidate.account] < cap:
            running[candidate.account] += 1
            launch.append(candidate)
        else:
            over_cap.append(candidate)
    spare = 0 if idle_gpus is None else max(0, idle_gpus - len(launch))
    turn: Counter[str] = Counter()
    ranked = []
    for position, candidate in enumerate(over_cap):  # round robin over accounts, each in the order given
        ranked.append((turn[candidate.account], position, candidate))
        turn[candidate.account] += 1
    chosen = {position for _, position, _ in sorted(ranked)[:spare]}
    launch += [c for position, c in enumerate(over_cap) if position in chosen]
    held = [c for position, c in enumerate(over_cap) if position not in chosen]
    return launch, held
