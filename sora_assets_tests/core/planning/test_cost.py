"""Cost model: GPU cost arithmetic, the time-of-use curve and the hosted-API price sheet."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sora_assets.core.planning.cost import (
    PriceCurve,
    api_equivalent_usd,
    duration_factor,
    gpu_cost_usd,
    resolution_class,
    window_start,
)

# --- hosted-API oracles (worked from the price sheet by hand) --------------------------------------
# 1080p: $0.20 / 10 s; 15 s -> x1.75; medium x1.0 => 0.35; priority x1.75 => 0.6125 -> 0.61
# 4K: $0.25; 25 s -> x2.75; extreme x1.6 => 1.10; priority => 1.925 -> 1.93 (half-up)
# 720p: $0.15; 10 s -> x1.0; simple x0.9 => 0.135 -> 0.14 (half-up)


@pytest.mark.parametrize(("width", "height", "seconds", "complexity", "priority", "usd"), [
    (1920, 1080, 15, "medium", False, 0.35),
    (1920, 1080, 15, "medium", True, 0.61),
    (3840, 2160, 25, "extreme", False, 1.10),
    (3840, 2160, 25, "extreme", True, 1.93),
    (1280, 720, 10, "simple", False, 0.14),
    (1280, 720, 10, "complex", False, 0.20),  # 0.15 * 1.3 = 0.195 -> 0.20
    (1080, 1920, 15, "medium", False, 0.35),  # portrait: the short side decides
    (64, 64, 1.125, "medium", False, 0.15),
])
def test_api_equivalent_oracles(width, height, seconds, complexity, priority, usd):
    assert api_equivalent_usd(width, height, seconds, complexity, priority) == usd


def test_api_equivalent_defaults_to_medium_standard():
    assert api_equivalent_usd(1920, 1080, 15) == 0.35


def test_api_equivalent_rejects_unknown_complexity():
    with pytest.raises(KeyError):
        api_equivalent_usd(1280, 720, 10, "impossible")


@pytest.mark.parametrize(("width", "height", "cls"), [
    (64, 64, "720p"), (1280, 720, "720p"), (720, 1280, "720p"), (1281, 721, "1080p"),
    (1920, 1080, "1080p"), (1080, 1920, "1080p"), (2048, 1081, "4k"), (3840, 2160, "4k"),
])
def test_resolution_class(width, height, cls):
    assert resolution_class(width, height) == cls


@pytest.mark.parametrize(("seconds", "factor"), [
    (0, "1.0"), (10, "1.0"), (10.01, "1.75"), (15, "1.75"), (20, "1.75"), (20.01, "2.75"), (60, "2.75"),
])
def test_duration_factor_boundaries(seconds, factor):
    assert duration_factor(seconds) == Decimal(factor)


def test_gpu_cost_arithmetic():
    # 120 GPU-s = 1/30 h; 1/30 * 3.50 = 0.11666..; * 1.3 = 0.151666..
    assert gpu_cost_usd(120, 3.50, 0.30) == pytest.approx(0.1516666667, rel=1e-9)
    assert gpu_cost_usd(120, 3.50) == pytest.approx(0.1516666667, rel=1e-9)  # default overhead 30%
    assert gpu_cost_usd(3600, 2.0, 0.0) == pytest.approx(2.0)
    assert gpu_cost_usd(0, 3.50) == 0.0


def test_gpu_cost_is_linear_in_seconds_and_price():
    base = gpu_cost_usd(100, 3.0)
    assert gpu_cost_usd(200, 3.0) == pytest.approx(2 * base)
    assert gpu_cost_usd(100, 6.0) == pytest.approx(2 * base)


def test_default_curve_peak_and_off_peak():
    curve = PriceCurve()
    assert len(curve.hourly) == 24
    peak = [curve.hourly[h] for h in range(8, 22)]
    off_peak = [curve.hourly[h] for h in (*range(0, 8), 22, 23)]
    assert len(set(peak)) == 1 and len(set(off_peak)) == 1
    assert peak[0] == 3.50
    assert off_peak[0] / peak[0] == pytest.approx(0.80, abs=0.01)  # about 20% cheaper


def test_price_at_uses_hour_of_day():
    curve = PriceCurve()
    assert curve.price_at(datetime(2024, 5, 1, 7, 59, tzinfo=UTC)) < curve.price_at(
        datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    assert curve.price_at(datetime(2024, 5, 1, 21, 59, tzinfo=UTC)) == 3.50
    assert curve.price_at(datetime(2024, 5, 1, 22, 0, tzinfo=UTC)) < 3.50


def test_custom_curve():
    curve = PriceCurve(hourly=[float(h) for h in range(24)])
    assert curve.price_at(datetime(2024, 1, 1, 13, 30, tzinfo=UTC)) == 13.0


@pytest.mark.parametrize("hourly", [[1.0] * 23, [1.0] * 25, [1.0] * 23 + [-0.01], []])
def test_invalid_curve(hourly):
    with pytest.raises(ValueError):
        PriceCurve(hourly=hourly)


def test_window_start_truncates_to_the_hour():
    when = datetime(2024, 5, 1, 9, 47, 12, 345678, tzinfo=UTC)
    assert window_start(when) == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert window_start(when).tzinfo is UTC
