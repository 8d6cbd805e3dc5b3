"""Pre-filter decisions for a large batch on several processes (issue 21: `validate` on 50,000 rows).

The pre-filter is CPU-bound Python (readings, compiled rules) plus the classifier and a MiniLM cascade, and one
process uses one core for most of it. Its decisions are per row, so chunks of a batch go to worker processes
that each build the same policy's default pre-filter. Workers are spawned, not forked: the parent may already
hold torch's OpenMP threads or a Dagster instance, which a fork would copy half-alive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from sora_assets.core.safety.prefilter import PrefilterDecision, TextPrefilter, default_prefilter

WORKERS_ENV = "SORA_ASSETS_PREFILTER_WORKERS"
PARALLEL_MIN_PROMPTS = 8192  # below this, starting workers (each loads the policy and MiniLM) costs more
_worker: TextPrefilter | None = None


def worker_count(prompts: int, env: dict[str, str] | None = None) -> int:
    """Processes for a batch: SORA_ASSETS_PREFILTER_WORKERS, else one per core (at most 4) for big batches."""
    env = os.environ if env is None else env
    if env.get(WORKERS_ENV):
        return max(1, int(env[WORKERS_ENV]))
    return min(os.cpu_count() or 1, 4) if prompts >= PARALLEL_MIN_PROMPTS else 1


def shareable(prefilter: TextPrefilter) -> bool:
    """Only the default pre-filter of a policy file can be rebuilt in another process from its path."""
    return prefilter is default_prefilter(prefilter.policy.source)


def _start(policy_source: str) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker: the workers are the parallelism
    global _worker
    _worker = default_prefilter(policy_source)


def _check(prompts: list[str]) -> list[PrefilterDecision]:
    assert _worker is not None, "worker not started"
    return _worker.check_many(prompts)


def parallel_check(chunks: Sequence[list[str]], policy_source: str, workers: int,
                   done: Callable[[int], None] | None = None) -> list[list[PrefilterDecision]]:
    """`check_many` of every chunk, in order, on `workers` spawned processes; `done(n)` after each chunk."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_start,
                             initargs=(policy_source,)) as pool:
        futures = [pool.submit(_check, list(chunk)) for chunk in chunks]
        results = []
        for chunk, future in zip(chunks, futures, strict=True):
            results.append(future.result())
            if done is not None:
                done(len(chunk))
        return results
