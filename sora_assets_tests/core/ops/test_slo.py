"""SLO arithmetic against hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from sora_assets.core.ops.slo import clip_rate_figures, percentile, shard_timing_figures

T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def by_metric(figures, tier: str) -> dict:
    return {(f.metric, f.dimension): (f.value, f.samples) for f in figures if f.tier == tier}


def test_percentile_interpolates_linearly() -> None:
    # sorted 60, 120, 180, 240, 600: p50 = 180; p95 at rank 0.95 * 4 = 3.8 -> 240 + 0.8 * 360 = 528
    assert percentile([600, 60, 180, 120, 240], 50) == 180
    assert percentile([600, 60, 180, 120, 240], 95) == pytest.approx(528.0)
    assert percentile([], 95) is None


def test_shard_timings_per_tier() -> None:
    def shard(key, tier, wait_min, e2e_min, deadline_min):
        return {"partition_key": key, "tier": tier, "registered_at": T0,
                "started_at": None if wait_min is None else T0 + timedelta(minutes=wait_min),
                "published_at": None if e2e_min is None else T0 + timedelta(minutes=e2e_min),
                "deadline": T0 + timedelta(minutes=deadline_min)}

    shards = pd.DataFrame([shard("p1", "paid", 1, 11, 60), shard("p2", "paid", 2, 12, 60),
                           shard("p3", "paid", 3, 13, 60), shard("p4", "paid", 4, 14, 60),
                           shard("p5", "paid", 10, 70, 60),  # published 10 min after its deadline
                           shard("f1", "free", 30, None, 600), shard("f2", "free", None, None, 600)])
    paid = by_metric(shard_timing_figures(shards), "paid")
    # waits 60, 120, 180, 240, 600 s
    assert paid[("queue_wait_p50_s", "")] == (180.0, 5)
    assert paid[("queue_wait_p95_s", "")][0] == pytest.approx(528.0)
    # end to end 660, 720, 780, 840, 4200 s: p50 780, p95 840 + 0.8 * 3360 = 3528
    assert paid[("end_to_end_p50_s", "")] == (780.0, 5)
    assert paid[("end_to_end_p95_s", "")][0] == pytest.approx(3528.0)
    # slack 2940, 2880, 2820, 2760, -600 s
    assert paid[("deadline_slack_min_s", "")] == (-600.0, 5)
    assert paid[("deadline_slack_p50_s", "")] == (2820.0, 5)
    assert paid[("late_shard_rate", "")] == (pytest.approx(0.2), 5)
    free = by_metric(shard_timing_figures(shards), "free")
    assert free[("queue_wait_p50_s", "")] == (1800.0, 1)  # f2 has not started: no sample
    assert free[("end_to_end_p50_s", "")] == (None, 0)


def test_clip_rates_per_tier() -> None:
    clips = pd.DataFrame([
        {"partition_key": "a", "clip_id": f"c{i}", "tier": "free", "status": status, "width": 64, "height": 64,
         "num_frames": 9}
        for i, status in enumerate(["published"] * 5 + ["cache_hit"] * 3 + ["blocked", "dead_letter"])]
        + [{"partition_key": "b", "clip_id": "p0", "tier": "paid", "status": "published", "width": 64,
            "height": 64, "num_frames": 9}])
    dead = pd.DataFrame([{"partition_key": "a", "clip_id": "c9", "tier": "free", "reason": "non_finite_latents"},
                         {"partition_key": "b", "clip_id": "x", "tier": "paid", "reason": "model_unavailable: x"}])
    scanned = [{"partition_key": "a", "clip_id": f"c{i}", "stage": "frame", "check_name": "frame_scan",
                "action": "block" if i == 8 else "pass"} for i in (0, 1, 2, 3, 4, 8)]
    blocks = [{"partition_key": "a", "clip_id": "c8", "stage": "frame", "check_name": "nudity", "action": "block"},
              {"partition_key": "a", "clip_id": "c8", "stage": "frame", "check_name": "nudity", "action": "block"},
              {"partition_key": "a", "clip_id": "c4", "stage": "frame", "check_name": "face", "action": "flag"}]
    ledger = pd.DataFrame([
        {"partition_key": "a", "clip_id": f"c{i}", "tier": "free", "model": "tiny-wan", "gpu_seconds": g,
         "cache_hit": i in (5, 6, 7)} for i, g in enumerate([2.0, 4.0, 6.0, 3.0, 1.0, 0.0, 0.0, 0.0, 5.0, 1.5])])
    figures = by_metric(clip_rate_figures(clips, dead, pd.DataFrame(scanned + blocks), ledger), "free")
    assert figures[("nan_abort_rate", "")] == (pytest.approx(0.1), 10)  # 1 NaN in 10 clips
    assert figures[("cache_hit_rate", "")] == (pytest.approx(0.3), 10)
    assert figures[("block_rate", "nudity")] == (pytest.approx(1 / 6), 6)  # one clip (two frames) of 6 scanned
    assert ("block_rate", "face") not in figures  # a flag is not a block
    # rows with GPU time (published 2, 4, 6, 3, 1; blocked 5; NaN-stopped 1.5): 22.5 / 7
    assert figures[("gpu_seconds_per_clip", "tiny-wan@64x64x9")] == (pytest.approx(22.5 / 7), 7)
    paid = by_metric(clip_rate_figures(clips, dead, pd.DataFrame(scanned + blocks), ledger), "paid")
    assert paid[("nan_abort_rate", "")] == (0.0, 1)  # a model-unavailable dead letter is not a NaN
