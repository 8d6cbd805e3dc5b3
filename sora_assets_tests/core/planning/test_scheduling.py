"""The window solver: exact against brute force, constraints on random instances, over-full nights, rounding."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sora_assets.core.planning.cost import PriceCurve
from sora_assets.core.planning.scheduling import (
    MAX_INFLATION,
    ShardDemand,
    _prepare,
    build_windows,
    first_come_first_served,
    horizon_hours,
    plan_shards,
)

NOW = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
# HiGHS bounded by work, never by the clock: the same solve stops at the same point on every machine and load
BOUNDED = {"time_limit_s": None, "node_limit": 20_000}
DEADLINE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def demand(key: str, seconds: float, tier: str = "free", deadline: datetime = DEADLINE, order: int = 0) -> ShardDemand:
    return ShardDemand(key, tier, seconds, deadline, NOW + timedelta(seconds=order))


def assert_valid(plan, windows, demands, step_minutes: int = 15) -> None:
    """Every shard planned once after now; at every instant the shards running fit the window's GPUs; a GPU
    slot never runs two shards at once (packed shards run back to back, off the grid)."""
    assert sorted(a.key for a in plan.assignments) == sorted(d.key for d in demands)
    gpus_at = {w.start: w.gpus for w in windows}
    edges = sorted({a.start for a in plan.assignments} | {a.end for a in plan.assignments})
    for t in edges:
        running = [a for a in plan.assignments if a.start <= t < a.end and a.gpu_seconds > 0]
        hour = t.replace(minute=0, second=0, microsecond=0)
        assert len(running) <= gpus_at.get(hour, windows[-1].gpus), f"over capacity at {t}"
    by_key = {d.key: d for d in demands}
    for a in plan.assignments:
        assert a.start >= NOW
        assert a.end == a.start + timedelta(seconds=by_key[a.key].gpu_seconds)
        assert a.gpu_slot < max(w.gpus for w in windows)
        others = [b for b in plan.assignments if b.gpu_slot == a.gpu_slot and b.key != a.key]
        assert all(b.end <= a.start or a.end <= b.start for b in others)


def test_default_curve_defers_work_to_off_peak_and_saves_against_fcfs() -> None:
    windows = build_windows(NOW, 24, PriceCurve(), gpus=2)
    demands = [demand(f"s{i}", 3000, order=i) for i in range(6)]
    plan = plan_shards(demands, windows, NOW, **BOUNDED)
    baseline = first_come_first_served(demands, windows, NOW)
    assert plan.status == "optimal"
    assert all(a.start.hour >= 22 or a.start.hour < 8 for a in plan.assignments)
    assert not plan.late
    assert plan.total_cost_usd == pytest.approx(baseline.total_cost_usd * 0.8, rel=1e-6)
    assert_valid(plan, windows, demands)


# Found on 2026-12-01: an instance whose grid the plan refined to a few minutes had ~10^8 start combinations for
# three units, and the enumeration ran for minutes (the old guard counted units only)
MAX_ENUMERATIONS = 200_000


def enumerations(demands, windows, step_minutes: int) -> int:
    """How many start combinations `brute_force` would try on this grid."""
    prepared = _prepare(demands, windows, NOW, step_minutes, MAX_INFLATION)
    return math.prod(len(prepared.grid.cost_table(d.gpu_seconds, 0.3)) for d in prepared.demands)


def brute_force(demands, windows, step_minutes: int):
    """Every start combination of the plan's units (shards, or short shards packed back to back), on the
    grid the plan uses; capacity and deadlines checked directly."""
    prepared = _prepare(demands, windows, NOW, step_minutes, MAX_INFLATION)
    grid, units = prepared.grid, prepared.demands
    tables = [grid.cost_table(d.gpu_seconds, 0.3) for d in units]
    best = None
    for starts in itertools.product(*[range(len(t)) for t in tables]):
        use = np.zeros(grid.points, dtype=int)
        ok = True
        for d, s in zip(units, starts, strict=True):
            if s > grid.latest_start(d.gpu_seconds, d.deadline):
                ok = False
                break
            use[s:s + grid.duration_points(d.gpu_seconds)] += 1
        if not ok or (use > grid.gpus).any():
            continue
        cost = sum(t[s] for t, s in zip(tables, starts, strict=True))
        best = cost if best is None else min(best, cost)
    return best


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(600, 7200), st.sampled_from(["paid", "free"]), st.integers(3, 8)),
                min_size=1, max_size=4),
       st.lists(st.floats(0.5, 5.0), min_size=24, max_size=24), st.integers(1, 2))
# Found by hypothesis on 2026-12-01: the plan refined its grid to 15 minutes, the brute force used 30.
@example(shards=[(600, "paid", 3), (600, "paid", 3), (2401, "paid", 3), (7200, "paid", 4)], hourly=[1.0] * 24, gpus=1)
def test_exact_plan_matches_brute_force(shards, hourly, gpus) -> None:
    now = NOW
    curve = PriceCurve(hourly=[round(p, 2) for p in hourly])
    windows = build_windows(now, 8, curve, gpus=gpus)
    demands = [demand(f"s{i}", secs, tier, now + timedelta(hours=h), order=i)
               for i, (secs, tier, h) in enumerate(shards)]
    plan = plan_shards(demands, windows, now, step_minutes=30, **BOUNDED)  # never raises: the horizon grows
    # Enumerate on the grid the plan actually used: short shards refine it (15 min instead of 30), and a
    # coarser brute force can miss on-time plans that the finer grid allows.
    if enumerations(demands, windows, plan.step_minutes) > MAX_ENUMERATIONS:
        return  # a refined grid with many units or start points: too many combinations to enumerate
    best = brute_force(demands, windows, plan.step_minutes)
    if best is None:
        # No on-time start for the packed units on the grid (a unit is due at its earliest member's deadline and
        # rounded up): the plan must name late shards, or every shard must in fact end by its own deadline.
        deadline = {d.key: d.deadline for d in demands}
        on_time = all(a.end <= deadline[a.key] for a in plan.assignments)
        assert plan.late or on_time, "no on-time plan exists on the grid, yet the plan names no late shard"
        return
    assert not plan.late
    assert plan.status == "optimal"
    assert plan.total_cost_usd == pytest.approx(best, abs=1e-5)
    assert_valid(plan, extend_to(windows, plan), demands, plan.step_minutes)


def extend_to(windows, plan):
    """The windows the plan used (it grows the horizon when the work needs more)."""
    from sora_assets.core.planning.scheduling import extend_windows

    return extend_windows(windows, plan.horizon_hours - len(windows)) if plan.horizon_hours > len(windows) else windows


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(60, 3 * 3600), st.sampled_from(["paid", "free"]), st.integers(2, 30)),
                min_size=1, max_size=25),
       st.integers(1, 4), st.sampled_from(["exact", "greedy"]), st.data())
def test_capacity_deadlines_and_rounding_hold_on_random_instances(shards, gpus, method, data) -> None:
    capacity = {NOW.replace(minute=0) + timedelta(hours=h): data.draw(st.integers(1, gpus))
                for h in data.draw(st.lists(st.integers(0, 30), max_size=5))}
    demands = [demand(f"s{i}", secs, tier, NOW + timedelta(hours=h), order=i)
               for i, (secs, tier, h) in enumerate(shards)]
    hours = horizon_hours(NOW, demands, 1)
    windows = build_windows(NOW, hours, PriceCurve(), gpus=gpus, capacity=capacity)
    plan = plan_shards(demands, windows, NOW, method=method, **BOUNDED)
    assert_valid(plan, extend_to(windows, plan), demands)
    for a in plan.assignments:  # an on-time shard really ends by its deadline, a late one says by how much
        assert (a.slack_seconds >= 0) == (a.end <= a.deadline)
    # rounding to the grid: within 10% whenever each tier has ten 3-minute steps of work to pack
    if all(sum(d.gpu_seconds for d in demands if d.tier == t) >= 1800 or not any(d.tier == t for d in demands)
           for t in ("paid", "free")):
        assert plan.max_inflation <= MAX_INFLATION + 1e-9


def test_infeasible_plan_names_late_shards_and_by_how_much() -> None:
    windows = build_windows(NOW, 12, PriceCurve(), gpus=1)
    tight = NOW + timedelta(hours=2)
    demands = [demand("a", 3600, "paid", tight), demand("b", 3600, "paid", tight), demand("c", 3600, "paid", tight)]
    plan = plan_shards(demands, windows, NOW, **BOUNDED)
    assert [a.key for a in plan.late] == ["c"] or len(plan.late) == 1
    (late,) = plan.late
    assert late.slack_seconds == pytest.approx(-3600)
    assert_valid(plan, windows, demands)


def test_paid_lateness_is_avoided_before_free_lateness() -> None:
    windows = build_windows(NOW, 12, PriceCurve(), gpus=1)
    tight = NOW + timedelta(hours=1)
    plan = plan_shards([demand("free", 3600, "free", tight), demand("paid", 3600, "paid", tight)], windows, NOW,
                       **BOUNDED)
    assert [a.key for a in plan.late] == ["free"]
    assert plan.by_key()["paid"].start == NOW


def test_paid_first_is_a_priority_free_work_still_uses_idle_gpus() -> None:
    """Paid before free never leaves a GPU idle: with room for both, the free shard takes the cheap hour too."""
    curve = PriceCurve(hourly=[1.0 if h == 14 else 5.0 for h in range(24)])
    windows = build_windows(NOW, 12, curve, gpus=4)
    for method in ("exact", "greedy"):
        plan = plan_shards([demand("paid", 1800, "paid", NOW + timedelta(hours=4)),
                            demand("free", 1800, "free", NOW + timedelta(hours=4))], windows, NOW, method=method,
                           **BOUNDED)
        assert all(a.end <= NOW + timedelta(hours=1) for a in plan.assignments)  # both in the $1 hour
    # one GPU, one cheap hour: the paid shard gets it, the free one runs after
    windows = build_windows(NOW, 12, curve, gpus=1)
    plan = plan_shards([demand("paid", 3600, "paid", NOW + timedelta(hours=4)),
                        demand("free", 3600, "free", NOW + timedelta(hours=4))], windows, NOW, method="greedy")
    assert plan.by_key()["paid"].start == NOW and plan.by_key()["free"].start > NOW


def test_greedy_gap_is_small_and_never_better_than_exact() -> None:
    """What holds whatever the HiGHS version and the machine's load: a feasible plan, its cost between its own
    lower bound and that bound plus the solver's gap, never worse than greedy, and greedy close to it."""
    rng = np.random.default_rng(7)
    demands = [demand(f"s{i}", float(rng.integers(600, 5400)), str(rng.choice(["paid", "free"])), order=i)
               for i in range(40)]
    windows = build_windows(NOW, horizon_hours(NOW, demands, 4), PriceCurve(), gpus=4)
    exact = plan_shards(demands, windows, NOW, method="exact", **BOUNDED)
    greedy = plan_shards(demands, windows, NOW, method="greedy")
    assert_valid(exact, windows, demands)
    assert not exact.late, "the instance fits before its deadline"
    assert exact.status in ("optimal", "feasible", "greedy")
    if exact.solver == "highs":
        assert exact.lower_bound_usd <= exact.total_cost_usd + 1e-9
        if exact.status == "optimal":  # proven within mip_rel_gap = 1e-6
            assert exact.total_cost_usd <= exact.lower_bound_usd * (1 + 1e-5)
    if not greedy.late:  # an on-time greedy plan can never beat the exact plan (it is kept when better)
        assert exact.total_cost_usd <= greedy.total_cost_usd + 1e-9
        assert greedy.total_cost_usd <= exact.total_cost_usd * 1.05


def test_work_crossing_a_price_boundary_is_charged_per_window() -> None:
    curve = PriceCurve(hourly=[2.0 if h == 14 else 4.0 for h in range(24)])
    windows = build_windows(NOW, 2, curve, gpus=1)
    plan = first_come_first_served([demand("x", 5400, deadline=NOW + timedelta(hours=2))], windows, NOW)
    (a,) = plan.assignments
    assert a.cost_usd == pytest.approx((2.0 * 1.0 + 4.0 * 0.5) * 1.3)


def test_starts_on_the_grid_after_now() -> None:
    now = NOW + timedelta(minutes=7)
    windows = build_windows(now, 4, PriceCurve(hourly=[1.0] * 24), gpus=1)
    plan = first_come_first_served([demand("x", 1800, deadline=now + timedelta(hours=3))], windows, now)
    assert plan.assignments[0].start == NOW + timedelta(minutes=15) and plan.step_minutes == 15
    # a 60-second shard alone would hold a 15-minute step (+1400%): the grid is refined, still after now
    plan = first_come_first_served([demand("x", 60, deadline=now + timedelta(hours=3))], windows, now)
    assert plan.assignments[0].start == NOW + timedelta(minutes=7) and plan.step_minutes == 1


def test_an_over_full_night_plans_with_named_late_shards() -> None:
    """1 GPU, 313 shards of 400 GPU-s (35 h of work in an 18 h night, given a 2 h horizon): a plan, never an
    error; the horizon grows, every shard is planned, and the late ones are named with their lateness."""
    demands = [demand(f"night-s{i:03d}", 400, "paid" if i < 94 else "free", order=i) for i in range(313)]
    windows = build_windows(NOW, 2, PriceCurve(), gpus=1)
    for method in ("auto", "greedy"):
        plan = plan_shards(demands, windows, NOW, method=method, **BOUNDED)
        assert plan.horizon_hours >= 36 and any("horizon grown" in note for note in plan.notes)
        assert_valid(plan, extend_to(windows, plan), demands)
        late = plan.late
        # the night holds 18 h = 162 shards of 400 s, back to back from 14:00: the rest are late
        assert 313 - 165 <= len(late) <= 313 - 155
        assert all(a.tier == "free" for a in late), "paid lateness is avoided first"
        assert all(a.slack_seconds < 0 and a.end > a.deadline for a in late)
        assert max(-a.slack_seconds for a in late) > 15 * 3600


def test_rounding_never_inflates_work_by_more_than_ten_percent() -> None:
    """Short shards are packed back to back (or the grid refined): a 30-GPU-second shard no longer holds a GPU
    for a 15-minute step. Each shard still runs for exactly its own work."""
    demands = [demand(f"s{i:03d}", 30 + i % 7, "paid" if i % 10 < 3 else "free", order=i) for i in range(313)]
    windows = build_windows(NOW, 24, PriceCurve(), gpus=1)
    plan = plan_shards(demands, windows, NOW, **BOUNDED)
    assert plan.max_inflation <= MAX_INFLATION
    assert not plan.late  # 3.1 GPU-hours: fits the night on one GPU (at 15 minutes each it would not)
    assert_valid(plan, windows, demands, plan.step_minutes)
    medium = [demand(f"m{i}", 1000, order=i) for i in range(20)]  # 1000 s rounds to 1800 s alone: +80%
    plan = plan_shards(medium, build_windows(NOW, 24, PriceCurve(), gpus=4), NOW, **BOUNDED)
    assert plan.step_minutes == 15 and plan.max_inflation <= MAX_INFLATION


def test_price_curve_reads_local_hours_and_dated_overrides() -> None:
    curve = PriceCurve(timezone="America/New_York",
                       dated={datetime(2026, 11, 21, 15, tzinfo=UTC): 9.0})
    assert curve.price_at(datetime(2026, 11, 21, 14, 30, tzinfo=UTC)) == 3.5  # 09:30 in New York: peak
    assert curve.price_at(datetime(2026, 11, 22, 3, 30, tzinfo=UTC)) == pytest.approx(3.5 * 0.8)  # 22:30 there
    assert curve.price_at(datetime(2026, 11, 21, 15, 10, tzinfo=UTC)) == 9.0  # a dated price wins
