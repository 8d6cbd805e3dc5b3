"""Fleet sizing from the cost model (the worked example in docs/DEPLOY.md)."""

from datetime import UTC, datetime

import pytest

from sora_assets.core.planning.capacity import gpus_needed, plan_fleet

NIGHT = dict(start=datetime(2026, 11, 21, 22, tzinfo=UTC), deadline=datetime(2026, 11, 22, 8, tzinfo=UTC))


def test_twenty_thousand_480p_clips_overnight() -> None:
    plan = plan_fleet(20_000, width=832, height=480, frames=81, fps=16, steps=50, **NIGHT)
    assert plan.seconds_per_clip == pytest.approx(0.05 * 32.34816 * 50 * 1.05)  # prior × steps × decode share
    assert plan.gpu_hours == pytest.approx(471.7, abs=0.1)
    assert plan.window_hours == 10 and plan.gpus == 56  # 471.7 GPU-h / (10 h × 0.85)
    assert plan.cost_usd == pytest.approx(471.7 * 2.80 * 1.3, abs=1)  # off-peak $2.80/GPU-h + 30% overhead
    assert plan.api_equivalent_usd == pytest.approx(3_000.00)  # 720p class, ≤10 s: $0.15 a clip
    assert plan.cost_per_clip_usd == pytest.approx(0.0859, abs=1e-4)


def test_cache_hits_and_a_wider_window_need_fewer_gpus() -> None:
    full = plan_fleet(20_000, width=832, height=480, frames=81, fps=16, steps=50, **NIGHT)
    cached = plan_fleet(20_000, width=832, height=480, frames=81, fps=16, steps=50, cache_hit_rate=0.25, **NIGHT)
    assert cached.renders == 15_000 and cached.gpus == 42 and cached.cost_usd == pytest.approx(full.cost_usd * 0.75)


def test_gpus_needed_rounds_up_and_rejects_impossible_windows() -> None:
    assert gpus_needed(8.5, 10) == 1 and gpus_needed(8.6, 10) == 2 and gpus_needed(0, 10) == 0
    with pytest.raises(ValueError):
        gpus_needed(1, 0)
