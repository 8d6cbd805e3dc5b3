"""Ledger and clip rows built from a clip's journey through the stages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sora_assets.core.planning.cost import PriceCurve, window_start
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.warehouse.ledger import CACHE_HIT, DUPLICATE, RENDERED, clip_row, ledger_row

SPEC = GenerationSpec(
    prompt="a red fox running through snow", negative_prompt="", model_id="tiny-wan",
    model_revision="rev1", seed=7, steps=30, width=64, height=64, num_frames=9, fps=8,
    guidance_scale=5.0, scheduler="UniPCMultistepScheduler",
)
KEY = "demo-0123456789-s000"
BATCH = "demo-0123456789"
CURVE = PriceCurve()


def _clip(**changes):
    clip = {
        "clip_id": f"{BATCH}-r00001", "row": 1, "source_id": "fox", "tier": "free", "complexity": "medium",
        "spec": SPEC.to_dict(), "cache_key": SPEC.cache_key(), "render_status": RENDERED,
        "gpu_seconds": 120.0, "steps_run": 30, "device": "cuda:0",
        "render_started_at": "2024-05-01T09:47:12+00:00",
    }
    clip.update(changes)
    return clip


def test_rendered_row_costs_gpu_time_at_the_window_price():
    row = ledger_row(_clip(), KEY, BATCH, CURVE, previous={})
    assert row["window_start"] == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert row["price_per_gpu_hour"] == 3.50  # 09:00 is peak
    assert row["gpu_seconds"] == 120.0
    assert row["cost_usd"] == pytest.approx(120 / 3600 * 3.50 * 1.30)
    assert row["overhead"] == pytest.approx(0.30)
    assert row["cache_hit"] is False
    assert row["device"] == "cuda:0"
    assert row["steps"] == 30 and row["model"] == "tiny-wan"
    assert (row["partition_key"], row["batch_id"], row["clip_id"], row["tier"]) == (
        KEY, BATCH, f"{BATCH}-r00001", "free")
    # 64x64, 9 frames at 8 fps = 1.125 s: 720p class, <=10 s, medium => $0.15
    assert row["api_equivalent_usd"] == 0.15
    assert row["cache_key"] == SPEC.cache_key()
    assert row["recorded_at"].tzinfo is not None


def test_off_peak_window_is_cheaper():
    peak = ledger_row(_clip(), KEY, BATCH, CURVE, {})
    night = ledger_row(_clip(render_started_at="2024-05-01T03:10:00+00:00"), KEY, BATCH, CURVE, {})
    assert night["price_per_gpu_hour"] < peak["price_per_gpu_hour"]
    assert night["cost_usd"] == pytest.approx(peak["cost_usd"] * night["price_per_gpu_hour"] / 3.50)


def test_paid_tier_is_priced_as_priority():
    row = ledger_row(_clip(tier="paid"), KEY, BATCH, CURVE, {})
    assert row["api_equivalent_usd"] == 0.26  # 0.15 * 1.75 = 0.2625


def test_custom_overhead():
    row = ledger_row(_clip(), KEY, BATCH, CURVE, {}, overhead=0.0)
    assert row["cost_usd"] == pytest.approx(120 / 3600 * 3.50)


def test_steps_fall_back_to_spec():
    row = ledger_row(_clip(steps_run=None), KEY, BATCH, CURVE, {})
    assert row["steps"] == SPEC.steps


def _earlier_row():
    return {
        "partition_key": KEY, "batch_id": BATCH, "clip_id": f"{BATCH}-r00001", "tier": "free",
        "model": "tiny-wan", "steps": 30, "gpu_seconds": 95.5,
        "window_start": datetime(2024, 4, 30, 23, 0, tzinfo=UTC), "price_per_gpu_hour": 2.8,
        "overhead": 0.3, "cost_usd": 95.5 / 3600 * 2.8 * 1.3, "api_equivalent_usd": 0.15,
        "cache_hit": False, "device": "cuda:0", "recorded_at": datetime(2024, 5, 1, 0, 1, tzinfo=UTC),
    }


def test_cache_hit_carries_over_the_earlier_rendered_row_of_the_same_spec():
    earlier = {**_earlier_row(), "cache_key": SPEC.cache_key()}
    clip = _clip(render_status=CACHE_HIT, gpu_seconds=0.0, render_started_at=None, device=None)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={clip["clip_id"]: dict(earlier)})
    assert row == earlier
    assert row["gpu_seconds"] == 95.5 and row["cache_hit"] is False


def test_an_earlier_row_without_a_cache_key_cannot_prove_the_same_spec():
    clip = _clip(render_status=CACHE_HIT, gpu_seconds=0.0, render_started_at=None, device=None)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={clip["clip_id"]: _earlier_row()})
    assert row["cache_hit"] is True and row["gpu_seconds"] == 0.0


def test_cache_hit_with_other_cache_key_is_a_fresh_zero_row():
    earlier = {**_earlier_row(), "cache_key": "f" * 64}
    clip = _clip(render_status=CACHE_HIT, gpu_seconds=0.0, render_started_at=None, device=None)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={clip["clip_id"]: earlier})
    assert row["cache_hit"] is True
    assert row["gpu_seconds"] == 0.0 and row["cost_usd"] == 0.0
    assert row["recorded_at"] != earlier["recorded_at"]


def test_cache_hit_over_an_earlier_cache_hit_is_a_fresh_zero_row():
    earlier = {**_earlier_row(), "cache_hit": True, "gpu_seconds": 0.0, "cost_usd": 0.0}
    clip = _clip(render_status=CACHE_HIT, gpu_seconds=0.0, render_started_at=None, device=None)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={clip["clip_id"]: earlier})
    assert row["cache_hit"] is True and row["cost_usd"] == 0.0
    assert row["window_start"] != earlier["window_start"]


def test_cache_hit_without_history_is_free():
    clip = _clip(render_status=CACHE_HIT, gpu_seconds=55.0, render_started_at=None, device=None)
    before = datetime.now(UTC)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={})
    after = datetime.now(UTC)
    assert row["cache_hit"] is True
    assert row["gpu_seconds"] == 0.0  # a cache hit never spends GPU time, whatever the clip says
    assert row["cost_usd"] == 0.0
    assert row["device"] == "none"
    assert row["api_equivalent_usd"] == 0.15  # the saving is still priced
    assert row["window_start"] in {window_start(before), window_start(after)}  # no start time: now


def test_previous_row_of_another_clip_is_not_used():
    clip = _clip(render_status=CACHE_HIT, gpu_seconds=0.0, render_started_at=None, device=None)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={"someone-else": _earlier_row()})
    assert row["cache_hit"] is True and row["gpu_seconds"] == 0.0


def test_duplicate_is_recorded_as_zero_cost():
    clip = _clip(render_status=DUPLICATE, gpu_seconds=0.0, render_started_at=None)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={})
    assert row["cache_hit"] is True and row["cost_usd"] == 0.0


def test_re_render_replaces_the_earlier_row():
    clip = _clip(gpu_seconds=60.0)
    row = ledger_row(clip, KEY, BATCH, CURVE, previous={clip["clip_id"]: _earlier_row()})
    assert row["gpu_seconds"] == 60.0
    assert row["window_start"] == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def test_clip_row():
    clip = _clip(final_status="published", sha256="a" * 64, store_path="/store/aa/a.mp4",
                 seed_derived=1, warnings=["w1", "w2"], c2pa_state="signed", scan_verdict="pass")
    row = clip_row(clip, KEY, BATCH)
    assert row["status"] == "published"
    assert row["cache_key"] == SPEC.cache_key()
    assert row["prompt_sha256"] == SPEC.prompt_sha256()
    assert "prompt" not in row
    assert row["seed"] == 7 and row["seed_derived"] is True
    assert row["duration_s"] == pytest.approx(9 / 8)
    assert (row["width"], row["height"], row["num_frames"], row["fps"]) == (64, 64, 9, 8)
    assert row["warnings"] == "w1; w2"
    assert row["model_revision"] == "rev1"
    assert row["row"] == 1 and row["source_id"] == "fox"


def test_clip_row_optional_fields():
    clip = _clip(final_status="rejected", steps_run=None)
    row = clip_row(clip, KEY, BATCH)
    assert row["warnings"] == ""
    assert row["seed_derived"] is False
    assert row["sha256"] is None and row["store_path"] is None
    assert row["steps"] == SPEC.steps


def test_a_fresh_dead_letter_bills_its_gpu_time_and_a_skipped_one_carries_the_earlier_row():
    from sora_assets.core.warehouse.ledger import DEAD_LETTER

    fresh = ledger_row(_clip(render_status=DEAD_LETTER, billable=True, gpu_seconds=3.0, steps_run=1),
                       KEY, BATCH, CURVE, previous={})
    assert fresh["gpu_seconds"] == 3.0 and fresh["cost_usd"] > 0 and not fresh["cache_hit"] and fresh["steps"] == 1
    skipped = _clip(render_status=DEAD_LETTER, billable=False, gpu_seconds=0.0)
    assert ledger_row(skipped, KEY, BATCH, CURVE, previous={fresh["clip_id"]: fresh}) == fresh
    unknown = ledger_row(skipped, KEY, BATCH, CURVE, previous={})  # dead-lettered in another shard
    assert unknown["gpu_seconds"] == 0.0 and unknown["cost_usd"] == 0.0 and not unknown["cache_hit"]


def test_clip_rows_carry_render_measurements():
    row = clip_row(_clip(final_status="published", resumed_from_step=40, step_seconds_mean=2.4,
                         frames_sha256="ab" * 32), KEY, BATCH)
    assert (row["gpu_seconds"], row["resumed_from_step"], row["step_seconds_mean"]) == (120.0, 40, 2.4)
    assert row["frames_sha256"] == "ab" * 32


def test_a_stored_render_pays_a_month_of_storage_and_a_cache_hit_pays_none():
    from sora_assets.core.planning.cost import storage_cost_usd

    assert storage_cost_usd(2_000_000_000) == pytest.approx(0.046)  # 2 GB for a month at $0.023/GB
    rendered = ledger_row(_clip(stored_bytes=50_000_000), KEY, BATCH, CURVE, previous={})
    assert rendered["storage_usd"] == pytest.approx(50_000_000 / 1e9 * 0.023)
    hit = ledger_row(_clip(render_status=CACHE_HIT, stored_bytes=50_000_000), KEY, BATCH, CURVE, previous={})
    assert hit["storage_usd"] == 0.0
