"""Deadlines, price files and the GPU-seconds estimator."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from sora_assets.core.intake.deadlines import default_deadline, parse_deadline
from sora_assets.core.intake.prompt_rules import coerce_row
from sora_assets.core.planning.estimates import PRIOR_SECONDS_PER_STEP_PER_MEGAVOXEL, StepCostModel
from sora_assets.core.planning.prices import PriceFileError, load_prices

LA = ZoneInfo("America/Los_Angeles")


def test_default_deadline_is_eight_the_next_morning_in_the_studio_zone() -> None:
    submitted = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)  # 14:00 in Los Angeles
    assert default_deadline(submitted, LA) == datetime(2026, 11, 22, 8, 0, tzinfo=LA)
    early = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # 06:00 there: 08:00 the same day
    assert default_deadline(early, LA) == datetime(2026, 11, 21, 8, 0, tzinfo=LA)


def test_parse_deadline_accepts_clock_times_and_iso_and_rejects_the_rest() -> None:
    submitted = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    assert parse_deadline("06:30", submitted, ZoneInfo("UTC")) == datetime(2026, 11, 22, 6, 30, tzinfo=UTC)
    assert parse_deadline("2026-11-23T09:00", submitted, LA) == datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    assert parse_deadline("2026-11-23T09:00+00:00", submitted, LA) == datetime(2026, 11, 23, 9, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601 date-time or HH:MM"):
        parse_deadline("tomorrow-ish", submitted, LA)


def test_a_malformed_deadline_rejects_the_row_with_a_reason() -> None:
    _, errors = coerce_row({"prompt": "a hill", "deadline": "25:99"})
    assert any("deadline must be" in e for e in errors)
    _, errors = coerce_row({"prompt": "a hill", "deadline": "07:45"})
    assert errors == []


def test_price_files_override_the_curve_and_capacity(tmp_path) -> None:
    (tmp_path / "a_curve.csv").write_text("hour,usd_per_gpu_hour\n" + "".join(f"{h},{1 + h}\n" for h in range(24)))
    (tmp_path / "b_spot.csv").write_text("start,usd_per_gpu_hour,gpus\n2026-11-21T23:00:00Z,0.5,6\n")
    settings = load_prices(tmp_path, "UTC")
    assert settings.sources == ["a_curve.csv", "b_spot.csv"]
    assert settings.curve.price_at(datetime(2026, 11, 21, 13, 10, tzinfo=UTC)) == 14.0
    assert settings.curve.price_at(datetime(2026, 11, 21, 23, 59, tzinfo=UTC)) == 0.5
    assert settings.capacity == {datetime(2026, 11, 21, 23, tzinfo=UTC): 6}


@pytest.mark.parametrize("content, message", [
    ("hour,usd_per_gpu_hour\n1,2\n", "one row per hour"),
    ("when,price\n1,2\n", "expected columns"),
    ("start,usd_per_gpu_hour\nnot-a-date,2\n", "ISO 8601"),
    ("start,usd_per_gpu_hour\n2026-11-21T23:00:00Z,-1\n", "non-negative"),
    ("start,usd_per_gpu_hour,gpus\n2026-11-21T23:00:00Z,1,0\n", "gpus must be"),
])
def test_bad_price_files_name_the_file_and_the_problem(tmp_path, content, message) -> None:
    (tmp_path / "prices.csv").write_text(content)
    with pytest.raises(PriceFileError, match=message) as info:
        load_prices(tmp_path, "UTC")
    assert "prices.csv" in str(info.value)


def spec(model: str = "m", width: int = 64, height: int = 64, frames: int = 9, steps: int = 10) -> dict:
    return {"model_id": model, "width": width, "height": height, "num_frames": frames, "steps": steps}


def test_estimator_uses_history_then_scales_then_falls_back_to_the_prior() -> None:
    history = pd.DataFrame([
        {"model": "m", "width": 64, "height": 64, "num_frames": 9, "steps": 10, "gpu_seconds": 1.05},
        {"model": "m", "width": 64, "height": 64, "num_frames": 9, "steps": 10, "gpu_seconds": 2.10},
        {"model": "m", "width": 64, "height": 64, "num_frames": 9, "steps": 10, "gpu_seconds": 3.15},
        {"model": "m", "width": 64, "height": 64, "num_frames": 9, "steps": 20, "gpu_seconds": 0.0},  # cache hit
    ])
    model = StepCostModel.from_history(history)
    seconds, source = model.clip_seconds(spec(steps=10))
    assert source == "history" and seconds == pytest.approx(2.10)  # median 0.2 s/step x 10 x 1.05 decode
    bigger, source = model.clip_seconds(spec(width=128, steps=10))
    assert source == "history-scaled" and bigger == pytest.approx(4.20)  # twice the voxels
    prior, source = model.clip_seconds(spec(model="other", width=832, height=480, frames=81, steps=50))
    assert source == "prior"
    assert prior == pytest.approx(PRIOR_SECONDS_PER_STEP_PER_MEGAVOXEL * 832 * 480 * 81 / 1e6 * 50 * 1.05)
    total, sources = model.shard_seconds([spec(), spec(model="other")])
    assert sources == {"history": 1, "prior": 1} and total > seconds
