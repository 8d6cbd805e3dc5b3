"""The pre-filter on worker processes decides exactly what one process decides, chunk by chunk, in order."""

from __future__ import annotations

from sora_assets.core.safety.prefilter import default_prefilter
from sora_assets.core.safety.prefilter_pool import PARALLEL_MIN_PROMPTS, parallel_check, shareable, worker_count
from sora_assets.safety.corpus import load


def test_worker_count_follows_the_setting_and_the_batch_size() -> None:
    assert worker_count(100, {}) == 1
    assert worker_count(PARALLEL_MIN_PROMPTS, {}) >= 1
    assert worker_count(10, {"SORA_ASSETS_PREFILTER_WORKERS": "3"}) == 3


def test_two_workers_decide_like_one_process() -> None:
    prompts = [row["prompt"] for row in load()[::29]][:240]  # unsafe and benign, 13 languages
    prefilter = default_prefilter()
    assert shareable(prefilter)
    chunks = [prompts[:120], prompts[120:]]
    seen: list[int] = []
    parallel = parallel_check(chunks, prefilter.policy.source, 2, seen.append)
    assert seen == [120, 120]
    assert [d for chunk in parallel for d in chunk] == prefilter.check_many(prompts)
    assert sum(d.blocked or d.held for chunk in parallel for d in chunk) > 20  # the sample has unsafe rows
