"""The window solver: which shard runs when, on which GPU, at the least cost that meets deadlines.

Time is cut into a grid (15 minutes by default) over hourly price windows. Each unit of work starts on a
grid point and holds one GPU for whole grid steps. A unit is one shard, or several short shards of one
tier and account packed back to back (they run one after another on one GPU), so that rounding a unit
up to whole grid steps never inflates its duration by more than `max_inflation` (10%); where packing
cannot reach that bound the grid is refined (15 -> 10 -> 5 -> ... -> 1 minute). The exact plan is a
time-indexed MIP solved by HiGHS: an integer per (class of interchangeable units, start point), each
unit starts once, and the units running in a grid step use at most that window's GPUs. At most G
overlapping runs is exactly "G parallel GPUs", so every plan maps onto GPU slots (interval-graph
colouring by start time).

Priorities, not rules that idle GPUs: when deadlines cannot all be met the model minimises lateness
first (paid lateness weighted 100x free lateness) and cost second, and the plan names the late shards.
Fair share is work-conserving: with `free_cap` set, one account's free units running in a grid step
number at most the cap only while another account still has work that has not started; an account
alone (or the last one with work) uses every GPU.

The horizon grows by itself (days repeated at the last day's prices) until all the work fits, so an
over-full night always gives a plan, with late shards, never an error. The greedy pass (for instances
too large for the exact model, or when the solver stops early) places units paid-first, earliest
deadline first, accounts interleaved, each at its cheapest start that still fits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from sora_assets.core.intake.batch_files import TIER_ORDER
from sora_assets.core.planning.cost import DEFAULT_OVERHEAD, PriceCurve, window_start
from sora_assets.core.stdio import native_stdout_to_stderr

PAID_LATENESS_WEIGHT = 100  # one grid step of paid lateness outweighs 100 steps of free lateness
MAX_INFLATION = 0.10  # rounding a unit of work up to whole grid steps adds at most this fraction of its work
GRID_STEPS_MINUTES = (60, 30, 20, 15, 12, 10, 6, 5, 4, 3, 2, 1)  # the divisors of an hour, coarse to fine
MAX_GRID_POINTS = 2000  # refining the grid stops before the horizon has more points than this
HORIZON_GROWTH_HOURS = 24  # an over-full horizon grows by whole days


@dataclass(frozen=True)
class ShardDemand:
    """One shard waiting for GPU time."""

    key: str
    tier: str
    gpu_seconds: float
    deadline: datetime
    submitted_at: datetime
    batch_id: str = ""
    clips: int = 0
    account: str = ""


@dataclass(frozen=True)
class Window:
    """One hourly price window and the GPUs available in it."""

    start: datetime
    end: datetime
    price_per_gpu_hour: float
    gpus: int


@dataclass
class Assignment:
    key: str
    tier: str
    batch_id: str
    start: datetime
    end: datetime
    gpu_slot: int
    gpu_seconds: float
    cost_usd: float
    deadline: datetime
    account: str = ""
    held_by_cap: bool = False  # a free shard that waited for its account's fair share while GPUs were free

    @property
    def slack_seconds(self) -> float:
        """Deadline minus planned end: negative means late by that much."""
        return (self.deadline - self.end).total_seconds()

    @property
    def window_start(self) -> datetime:
        return window_start(self.start)

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(hours=1)


@dataclass
class Plan:
    assignments: list[Assignment]
    solver: str  # highs | greedy | fcfs | empty
    status: str  # optimal | feasible | greedy | empty
    solve_seconds: float
    lower_bound_usd: float | None = None
    notes: list[str] = field(default_factory=list)
    step_minutes: int = 0  # the grid the plan used (refined from the requested one when rounding needed it)
    max_inflation: float = 0.0  # the largest (reserved grid time / work - 1) over the plan's units
    horizon_hours: int = 0  # the windows the plan used (grown past the given ones when the work needed it)

    @property
    def total_cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.assignments)

    @property
    def late(self) -> list[Assignment]:
        return [a for a in self.assignments if a.slack_seconds < 0]

    def by_key(self) -> dict[str, Assignment]:
        return {a.key: a for a in self.assignments}


def build_windows(start: datetime, hours: int, curve: PriceCurve, gpus: int,
                  capacity: dict[datetime, int] | None = None) -> list[Window]:
    """Hourly windows from the hour containing `start`; `capacity` overrides GPUs per window."""
    if gpus < 1:
        raise ValueError("the GPU count is at least 1")
    first = window_start(start.astimezone(UTC))
    windows = []
    for h in range(hours):
        ws = first + timedelta(hours=h)
        windows.append(Window(ws, ws + timedelta(hours=1), curve.price_at(ws),
                              int((capacity or {}).get(ws, gpus))))
    return windows


def extend_windows(windows: Sequence[Window], hours: int) -> list[Window]:
    """`hours` more hourly windows after the last, repeating the last day's prices and GPU counts (a price
    curve is daily; a dated override past the given windows is not known here)."""
    if not windows:
        raise ValueError("at least one window is needed")
    pattern = list(windows[-24:])
    extended = list(windows)
    for h in range(hours):
        model = pattern[h % len(pattern)]
        start = extended[-1].end
        extended.append(Window(start, start + timedelta(hours=1), model.price_per_gpu_hour, max(1, model.gpus)))
    return extended


@dataclass
class _Grid:
    """The discretised horizon: grid points, price per grid step, free GPUs per grid step."""

    origin: datetime  # grid point 0
    step_s: int
    prices: np.ndarray  # $/GPU-hour per grid step
    gpus: np.ndarray  # GPUs per grid step

    @property
    def points(self) -> int:
        return len(self.prices)

    def at(self, point: int) -> datetime:
        return self.origin + timedelta(seconds=point * self.step_s)

    def duration_points(self, gpu_seconds: float) -> int:
        return max(1, math.ceil(gpu_seconds / self.step_s - 1e-9))

    def cost_table(self, gpu_seconds: float, overhead: float) -> np.ndarray:
        """Cost in dollars of running `gpu_seconds` from each start point (work may cross windows)."""
        full, rest = divmod(gpu_seconds, self.step_s)
        full = int(full)
        per_step = self.prices * self.step_s / 3600.0
        cumulative = np.concatenate([[0.0], np.cumsum(per_step)])
        n = self.points - self.duration_points(gpu_seconds) + 1
        if n <= 0:
            return np.zeros(0)
        starts = np.arange(n)
        cost = cumulative[starts + full] - cumulative[starts]
        if rest > 0:
            cost = cost + self.prices[starts + full] * rest / 3600.0
        return cost * (1.0 + overhead)

    def cost_between(self, offset_s: float, gpu_seconds: float, overhead: float) -> float:
        """Cost of `gpu_seconds` of work starting `offset_s` after the origin (anywhere, not only on the grid)."""
        per_step = self.prices * self.step_s / 3600.0
        cumulative = np.concatenate([[0.0], np.cumsum(per_step)])

        def spent(t: float) -> float:  # dollars from the origin to t seconds, prices piecewise constant
            point = min(int(t // self.step_s), self.points - 1)
            return float(cumulative[point] + self.prices[point] * (t - point * self.step_s) / 3600.0)

        return (spent(offset_s + gpu_seconds) - spent(offset_s)) * (1.0 + overhead)

    def latest_start(self, gpu_seconds: float, deadline: datetime) -> int:
        """Last start point whose work ends by the deadline (may be negative: impossible)."""
        room = (deadline - self.origin).total_seconds() - gpu_seconds
        return math.floor(room / self.step_s + 1e-9)


def _grid_for(now: datetime, windows: Sequence[Window], step_minutes: int) -> _Grid:
    if 60 % step_minutes:
        raise ValueError("the grid step divides an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60 minutes)")
    step_s = step_minutes * 60
    per_window = 3600 // step_s
    origin_window = windows[0].start
    # grid point 0 is the first grid point at or after `now`
    skip = math.ceil(max(0.0, (now - origin_window).total_seconds()) / step_s - 1e-9)
    prices = np.repeat([w.price_per_gpu_hour for w in windows], per_window)[skip:]
    gpus = np.repeat([w.gpus for w in windows], per_window)[skip:]
    return _Grid(origin_window + timedelta(seconds=skip * step_s), step_s, prices.astype(float),
                 gpus.astype(int))


def _inflation(gpu_seconds: float, step_s: int) -> float:
    """Reserved grid time over work, minus one (a unit of no work reserves one step but costs nothing)."""
    if gpu_seconds <= 0:
        return 0.0
    return max(1, math.ceil(gpu_seconds / step_s - 1e-9)) * step_s / gpu_seconds - 1.0


def _unit(members: list[ShardDemand]) -> ShardDemand:
    """Shards packed back to back as one unit: due at the earliest member deadline, so every member is."""
    first = members[0]
    key = first.key if len(members) == 1 else f"{first.key}+{len(members) - 1}"
    return ShardDemand(key, first.tier, sum(m.gpu_seconds for m in members), min(m.deadline for m in members),
                       min(m.submitted_at for m in members), first.batch_id, sum(m.clips for m in members),
                       first.account)


def _within(members: list[ShardDemand], step_s: int, max_inflation: float) -> bool:
    """Whether a pack's rounding to whole grid steps stays within the bound."""
    return _inflation(sum(m.gpu_seconds for m in members), step_s) <= max_inflation


def _fill(members: list[ShardDemand], step_s: int,
          max_inflation: float) -> tuple[list[list[ShardDemand]], list[ShardDemand]]:
    """Packs closed as soon as they meet the bound; a remainder is merged backwards into the last
    packs until the merged pack meets it too (always, once it spans ten steps)."""
    packs, current = [], []
    for d in members:
        current.append(d)
        if _within(current, step_s, max_inflation):
            packs.append(current)
            current = []
    while current and packs and not _within(current, step_s, max_inflation):
        current = packs.pop() + current
    if current and _within(current, step_s, max_inflation):
        packs.append(current)
        current = []
    return packs, current


def _pack_remainders(units: dict[str, list[ShardDemand]], remainders: dict[tuple, list[ShardDemand]],
                     step_s: int, max_inflation: float) -> None:
    """What no deadline group could pack: packed across the tier and account's deadlines, and what still
    misses the bound rides along with that tier and account's longest units (`units` is updated in place)."""
    for (tier, account), members in remainders.items():
        if not members:
            continue
        members.sort(key=lambda d: (d.deadline, d.key))
        packs, rest = _fill(members, step_s, max_inflation)
        for pack in packs:
            units[_unit(pack).key] = pack
        if not rest:
            continue
        # still outside the bound: ride along with the tier and account's longest units until within it
        # (always, once the merged pack spans ten steps), or else the caller refines the grid
        hosts = sorted((k for k, ms in units.items() if ms[0].tier == tier and ms[0].account == account),
                       key=lambda k: (-sum(m.gpu_seconds for m in units[k]), k))
        merged = list(rest)
        for host in hosts:
            if _within(merged, step_s, max_inflation):
                break
            merged += units.pop(host)
        merged.sort(key=lambda d: (d.deadline, d.key))  # due first, run first
        units[_unit(merged).key] = merged


def pack_demands(demands: Sequence[ShardDemand], step_s: int,
                 max_inflation: float = MAX_INFLATION) -> dict[str, list[ShardDemand]]:
    """Units of work for the grid: unit key -> its shards, in the order they run.

    A shard whose rounding to whole steps stays within `max_inflation` is its own unit. Shorter ones of
    one tier, account and deadline are packed back to back until the pack's rounding is within the
    bound; a remainder joins the group's last pack, or (none) the tier and account's other remainders.
    Packing, not a finer grid, is tried first because it keeps the MIP small: a 30-GPU-second shard on
    a 15-minute grid would otherwise hold a GPU for 30 times its work.
    """
    units: dict[str, list[ShardDemand]] = {}
    groups: dict[tuple, list[ShardDemand]] = {}
    for d in sorted(demands, key=lambda d: (d.deadline, d.key)):
        if _inflation(d.gpu_seconds, step_s) <= max_inflation:
            units[d.key] = [d]
        else:
            groups.setdefault((d.tier, d.account, d.deadline), []).append(d)
    remainders: dict[tuple, list[ShardDemand]] = {}
    for (tier, account, _), members in groups.items():
        packs, rest = _fill(members, step_s, max_inflation)
        remainders.setdefault((tier, account), []).extend(rest)
        for pack in packs:
            units[_unit(pack).key] = pack
    _pack_remainders(units, remainders, step_s, max_inflation)
    return units


@dataclass
class _Prepared:
    grid: _Grid
    units: dict[str, list[ShardDemand]]
    demands: list[ShardDemand]  # one per unit
    step_minutes: int
    max_inflation: float
    windows: list[Window]
    notes: list[str]

    @property
    def hours(self) -> int:
        return len(self.windows)


def _prepare(demands: Sequence[ShardDemand], windows: Sequence[Window], now: datetime, step_minutes: int,
             max_inflation: float) -> _Prepared:
    """Pick the grid (the requested step, refined only while packing cannot meet the rounding bound),
    pack the shards into units and grow the horizon until all the work fits in it."""
    if 60 % step_minutes:
        raise ValueError("the grid step divides an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60 minutes)")
    notes: list[str] = []
    hours_needed = len(windows)
    chosen = None
    for step in [m for m in GRID_STEPS_MINUTES if m <= step_minutes]:
        units = pack_demands(demands, step * 60, max_inflation)
        worst = max((_inflation(sum(m.gpu_seconds for m in ms), step * 60) for ms in units.values()), default=0.0)
        points = hours_needed * 60 // step
        if chosen is not None and points > MAX_GRID_POINTS:
            break
        chosen = (step, units, worst)
        if worst <= max_inflation + 1e-9:
            break
    step, units, worst = chosen
    if step != step_minutes:
        notes.append(f"grid refined from {step_minutes} to {step} minutes so that rounding stays within "
                     f"{max_inflation:.0%}")
    if worst > max_inflation + 1e-9:
        notes.append(f"grid rounding inflates a unit of work by {worst:.0%} (too little work to pack)")
    unit_demands = [_unit(ms) for ms in units.values()]
    windows = list(windows)
    grid = _grid_for(now, windows, step)
    while True:  # the horizon grows until all the work fits, so an over-full night still gives a plan
        total = sum(grid.duration_points(d.gpu_seconds) for d in unit_demands)
        longest = max(grid.duration_points(d.gpu_seconds) for d in unit_demands)
        if total <= int(grid.gpus.sum()) and longest <= grid.points:
            break
        windows = extend_windows(windows, HORIZON_GROWTH_HOURS)
        grid = _grid_for(now, windows, step)
    if len(windows) > hours_needed:
        notes.append(f"horizon grown from {hours_needed} to {len(windows)} hours to hold all the work")
    return _Prepared(grid, units, unit_demands, step, worst, windows, notes)


def _order(demands: Sequence[ShardDemand]) -> list[ShardDemand]:
    """Priority order: paid first, earliest deadline, then accounts interleaved (each account's largest first)."""
    rank: dict[str, int] = {}
    groups: dict[tuple, list[ShardDemand]] = {}
    for d in demands:
        groups.setdefault((TIER_ORDER.get(d.tier, 1), d.deadline, d.account), []).append(d)
    for members in groups.values():
        for i, d in enumerate(sorted(members, key=lambda d: (-d.gpu_seconds, d.key))):
            rank[d.key] = i
    return sorted(demands, key=lambda d: (TIER_ORDER.get(d.tier, 1), d.deadline, rank[d.key], -d.gpu_seconds, d.key))


def _assign_slots(grid: _Grid, demands: Sequence[ShardDemand], starts: dict[str, int],
                  overhead: float, free_cap: int | None = None) -> list[Assignment]:
    """GPU slots by start time (interval-graph colouring: never more slots than concurrent runs).

    Where a window has fewer GPUs the plan runs fewer shards at once; which physical GPUs went
    away is not known to the plan, so slots are labels of concurrent runs, not device ids.
    """
    by_key = {d.key: d for d in demands}
    busy_until = [0] * int(grid.gpus.max())
    assignments = []
    held = _held_by_cap(grid, by_key, starts, overhead, free_cap) if free_cap is not None else set()
    for key in sorted(starts, key=lambda k: (starts[k], k)):
        d, start = by_key[key], starts[key]
        slot = next((s for s, until in enumerate(busy_until) if until <= start), None)
        if slot is None:
            raise AssertionError(f"plan over capacity at grid point {start}")
        busy_until[slot] = start + grid.duration_points(d.gpu_seconds)
        cost = float(grid.cost_table(d.gpu_seconds, overhead)[start])
        begin = grid.at(start)
        assignments.append(Assignment(d.key, d.tier, d.batch_id, begin, begin + timedelta(seconds=d.gpu_seconds),
                                      slot, d.gpu_seconds, cost, d.deadline, d.account, key in held))
    return sorted(assignments, key=lambda a: (a.start, a.gpu_slot, a.key))


def _expand(grid: _Grid, units: dict[str, list[ShardDemand]], placed: list[Assignment],
            overhead: float) -> list[Assignment]:
    """One assignment per shard: a pack's shards run back to back on its GPU slot from its start."""
    out = []
    for unit in placed:
        offset = (unit.start - grid.origin).total_seconds()
        for d in units[unit.key]:
            begin = grid.origin + timedelta(seconds=offset)
            cost = grid.cost_between(offset, d.gpu_seconds, overhead) if len(units[unit.key]) > 1 else unit.cost_usd
            out.append(Assignment(d.key, d.tier, d.batch_id, begin, begin + timedelta(seconds=d.gpu_seconds),
                                  unit.gpu_slot, d.gpu_seconds, cost, d.deadline, d.account, unit.held_by_cap))
            offset += d.gpu_seconds
    return sorted(out, key=lambda a: (a.start, a.gpu_slot, a.key))


def _held_by_cap(grid: _Grid, by_key: dict[str, ShardDemand], starts: dict[str, int], overhead: float,
                 free_cap: int) -> set[str]:
    """Free shards the fair-share cap delayed: an earlier start at no higher cost had a GPU free for the
    whole run, but the shard's account already had `free_cap` free shards running in that time while
    another account's work had not started yet (the only time the cap binds)."""
    running = np.zeros(grid.points, dtype=int)
    account_running: dict[str, np.ndarray] = {}
    last_start: dict[str, int] = {}
    for key, start in starts.items():
        d = by_key[key]
        span = slice(start, start + grid.duration_points(d.gpu_seconds))
        running[span] += 1
        last_start[d.account] = max(last_start.get(d.account, -1), start)
        if d.tier != "paid":
            account_running.setdefault(d.account, np.zeros(grid.points, dtype=int))[span] += 1
    held = set()
    for key, start in starts.items():
        d = by_key[key]
        others_wait_until = max((s for a, s in last_start.items() if a != d.account), default=-1)
        if d.tier == "paid" or start == 0 or others_wait_until <= 0:
            continue
        length = grid.duration_points(d.gpu_seconds)
        others = running.copy()
        others[start:start + length] -= 1
        mine = account_running[d.account].copy()
        mine[start:start + length] -= 1
        spare = np.lib.stride_tricks.sliding_window_view(grid.gpus - others, length).min(axis=1)[:start] >= 1
        at_cap = np.lib.stride_tricks.sliding_window_view(mine, length).max(axis=1)[:start] >= free_cap
        costs = grid.cost_table(d.gpu_seconds, overhead)
        no_dearer = costs[:start] <= costs[start] + 1e-12
        binding = np.arange(start) < others_wait_until
        if (spare & at_cap & no_dearer & binding).any():
            held.add(key)
    return held


def _rest_fits(free: np.ndarray, rest_ends: np.ndarray, rest_lengths: np.ndarray) -> bool:
    """Necessary condition that the shards still to place can meet their deadlines (fluid capacity):
    work due by each deadline point fits in the GPU steps left before it."""
    if len(rest_ends) == 0:
        return True
    prefix = np.concatenate([[0], np.cumsum(free)])
    order = np.argsort(rest_ends, kind="stable")
    ends, lengths = rest_ends[order], rest_lengths[order]
    return not (np.cumsum(lengths) > prefix[ends]).any()


class _NoRoom(Exception):
    """The horizon is too short for greedy placement: the caller grows it and tries again."""


def _under_cap(grid: _Grid, left: np.ndarray, length: int, n: int, account: str, unplaced: dict[str, int],
               last_start: dict[str, int]) -> np.ndarray:
    """Start points whose run keeps the account's free shards within its share wherever the cap binds: while
    another account has work still to place, everywhere; else before the other accounts' last start."""
    others_waiting = any(c > 0 for a, c in unplaced.items() if a != account)
    wait_until = grid.points if others_waiting else max(
        (s for a, s in last_start.items() if a != account), default=0)
    binding = np.arange(grid.points) < wait_until
    ok = np.where(binding, left >= 1, True)
    return np.lib.stride_tricks.sliding_window_view(ok, length).min(axis=1)[:n]


def _cheapest_safe_start(grid: _Grid, d: ShardDemand, overhead: float, free: np.ndarray, on_time: np.ndarray,
                         length: int, rest_ends: np.ndarray, rest_lengths: np.ndarray, lookahead: int) -> int:
    """The cheapest on-time start (earliest among equal costs) after which the shards still to place can,
    by fluid capacity, meet their deadlines; the cheapest one when none of the `lookahead` cheapest can."""
    costs = grid.cost_table(d.gpu_seconds, overhead)[on_time]
    ranked = on_time[np.argsort(costs, kind="stable")]  # equal costs: earliest first
    for candidate in ranked[:lookahead]:
        trial = free.copy()
        trial[candidate:candidate + length] -= 1
        if _rest_fits(trial, rest_ends, rest_lengths):
            return int(candidate)
    return int(ranked[0])


def greedy_starts(grid: _Grid, demands: Sequence[ShardDemand], overhead: float,
                  asap: bool = False, order: Sequence[ShardDemand] | None = None,
                  lookahead: int = 64, free_cap: int | None = None) -> dict[str, int]:
    """Cheapest feasible start per shard in priority order; `asap` = earliest start (first come, first served).

    A start is taken only if the shards still to place can, by fluid capacity, still meet their
    deadlines; the `lookahead` cheapest candidates are tried before giving up on that guard. The
    fair-share cap applies while another account still has work to start, and never makes a shard late:
    when no capped start meets its deadline, the uncapped ones are used.
    """
    free = grid.gpus.astype(int).copy()
    share: dict[str, np.ndarray] = {}  # per account: free-tier slots left under the fair-share cap
    starts: dict[str, int] = {}
    ordered = list(order) if order is not None else _order(demands)
    lengths = np.array([grid.duration_points(d.gpu_seconds) for d in ordered], dtype=int)
    latest = np.array([grid.latest_start(d.gpu_seconds, d.deadline) for d in ordered], dtype=int)
    ends = np.clip(latest + lengths, 0, grid.points)
    unplaced: dict[str, int] = {}
    for d in ordered:
        unplaced[d.account] = unplaced.get(d.account, 0) + 1
    last_start: dict[str, int] = {}
    for position, d in enumerate(ordered):
        unplaced[d.account] -= 1
        length = int(lengths[position])
        n = grid.points - length + 1
        if n <= 0:
            raise _NoRoom(d.key)
        fits = np.lib.stride_tricks.sliding_window_view(free, length).min(axis=1)[:n] >= 1
        capped = fits.copy()
        use_cap = free_cap is not None and d.tier != "paid"
        if use_cap:
            left = share.setdefault(d.account, np.full(grid.points, free_cap, dtype=int))
            capped &= _under_cap(grid, left, length, n, d.account, unplaced, last_start)
        candidates = np.flatnonzero(capped)
        if use_cap and not (candidates[candidates <= latest[position]]).size:
            candidates = np.flatnonzero(fits)  # work-conserving: the cap never makes a shard late
        if len(candidates) == 0:
            raise _NoRoom(d.key)
        start = int(candidates[0])  # ASAP, and the fallback when no start meets the deadline
        on_time = candidates[candidates <= latest[position]]
        if not asap and len(on_time):
            start = _cheapest_safe_start(grid, d, overhead, free, on_time, length, ends[position + 1:],
                                         lengths[position + 1:], lookahead)
        free[start:start + length] -= 1
        if use_cap:
            share[d.account][start:start + length] -= 1
        starts[d.key] = start
        last_start[d.account] = max(last_start.get(d.account, 0), start)
    return starts


def _classes(grid: _Grid, demands: Sequence[ShardDemand]) -> list[list[ShardDemand]]:
    """Shards that are interchangeable for the solver (tier, account, GPU-seconds, deadline point) share a
    class; the account matters to the fair-share cap."""
    groups: dict[tuple, list[ShardDemand]] = {}
    for d in sorted(demands, key=lambda d: d.key):
        signature = (d.tier == "paid", d.account, round(d.gpu_seconds, 6),
                     grid.latest_start(d.gpu_seconds, d.deadline))
        groups.setdefault(signature, []).append(d)
    return list(groups.values())


def cap_regions(grid: _Grid, demands: Sequence[ShardDemand], starts: dict[str, int],
                free_cap: int | None) -> dict[str, int]:
    """Where the work-conserving cap binds, per account: grid points before the last start of any other
    account's work (until then, another account is waiting). Accounts the cap cannot bind for (no more free
    units than the cap, no other account, no more GPUs than the cap) are left out."""
    if free_cap is None or int(grid.gpus.max()) <= free_cap:
        return {}
    last: dict[str, int] = {}
    free_units: dict[str, int] = {}
    for d in demands:
        last[d.account] = max(last.get(d.account, 0), starts[d.key])
        if d.tier != "paid":
            free_units[d.account] = free_units.get(d.account, 0) + 1
    regions = {}
    for account, count in free_units.items():
        until = max((s for a, s in last.items() if a != account), default=0)
        if count > free_cap and until > 0:
            regions[account] = until
    return regions


@dataclass
class _Columns:
    """The MIP's integer columns, one per (class, start point): the arrays every row and the objective index."""

    cost: np.ndarray  # dollars of one shard of the class starting at the point
    late: np.ndarray  # weighted grid steps past the class's latest on-time start
    owner: np.ndarray  # the class
    point: np.ndarray  # the start point
    upper: np.ndarray  # the class's shard count: the most that may start at one point

    @property
    def n(self) -> int:
        return len(self.cost)


class _Rows:
    """Constraint rows collected as (indices, values) with bounds, so HiGHS gets them in one `addRows` call."""

    def __init__(self) -> None:
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.rows: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, idx: np.ndarray, values: np.ndarray, lo: float, hi: float) -> None:
        self.rows.append((np.asarray(idx), np.asarray(values, dtype=float)))
        self.lo.append(lo)
        self.hi.append(hi)

    def load(self, h: Any) -> None:
        """Hand every row to HiGHS as one compressed-row matrix (one call instead of one per row)."""
        rows = self.rows
        starts = np.cumsum([0] + [len(r[0]) for r in rows])[:-1]
        h.addRows(len(rows), np.array(self.lo), np.array(self.hi), int(sum(len(r[0]) for r in rows)),
                  starts.astype(np.int32), np.concatenate([r[0] for r in rows]).astype(np.int32),
                  np.concatenate([r[1] for r in rows]).astype(float))


class _MilpModel:
    """The time-indexed MIP of one grid and its units, and the fair-share regions that grow between solves.

    A class rather than closures so that each part of the model (columns, rows, the solve passes) is a
    named method that reads the shared state (grid, classes, regions) explicitly."""

    def __init__(self, grid: _Grid, demands: Sequence[ShardDemand], overhead: float, time_limit_s: float | None,
                 threads: int, free_cap: int | None, node_limit: int | None, cap_until: dict[str, int] | None):
        self.grid, self.demands, self.overhead = grid, demands, overhead
        self.time_limit_s, self.threads, self.free_cap, self.node_limit = time_limit_s, threads, free_cap, node_limit
        self.classes = _classes(grid, demands)
        self.class_paid = np.array([m[0].tier == "paid" for m in self.classes])
        self.regions = dict(cap_until or {})

    def _highs(self) -> Any:
        """A quiet HiGHS instance with the limits asked for."""
        import highspy

        with native_stdout_to_stderr():  # highspy 1.16 prints a banner to fd 1 when constructed
            h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        if self.time_limit_s is not None:  # wall clock: the same instance may stop at another point under load
            h.setOptionValue("time_limit", float(self.time_limit_s))
        if self.node_limit is not None:  # a deterministic bound: the same work on every machine
            h.setOptionValue("mip_max_nodes", int(self.node_limit))
        h.setOptionValue("threads", int(self.threads))
        h.setOptionValue("mip_rel_gap", 1e-6)
        return h

    def _columns(self, allow_late: bool) -> _Columns | None:
        """The start points each class may use (up to its deadline unless lateness is allowed); None when a
        class has none, i.e. the model is infeasible before HiGHS is asked."""
        cost, late, owner, point, upper_count = [], [], [], [], []
        for c, members in enumerate(self.classes):
            d = members[0]
            table = self.grid.cost_table(d.gpu_seconds, self.overhead)
            latest = self.grid.latest_start(d.gpu_seconds, d.deadline)
            upper = len(table) - 1 if allow_late else min(len(table) - 1, latest)
            if upper < 0:
                return None
            ks = np.arange(upper + 1)
            cost.append(table[: upper + 1])
            weight = PAID_LATENESS_WEIGHT if d.tier == "paid" else 1
            late.append(np.maximum(0, ks - latest) * weight)
            owner.append(np.full(upper + 1, c))
            point.append(ks)
            upper_count.append(np.full(upper + 1, len(members)))
        return _Columns(np.concatenate(cost), np.concatenate(late).astype(float), np.concatenate(owner),
                        np.concatenate(point), np.concatenate(upper_count))

    def _running(self, cols: _Columns) -> tuple[np.ndarray, np.ndarray]:
        """(columns, bounds): the columns running in grid step tau are columns[bounds[tau]:bounds[tau + 1]]."""
        grid = self.grid
        lengths = np.array([grid.duration_points(m[0].gpu_seconds) for m in self.classes])[cols.owner]
        running = np.repeat(np.arange(cols.n), lengths)
        taus = np.repeat(cols.point, lengths) + (np.arange(len(running)) - np.repeat(np.cumsum(lengths) - lengths,
                                                                                     lengths))
        order = np.argsort(taus, kind="stable")
        taus, running = taus[order], running[order]
        return running, np.searchsorted(taus, np.arange(grid.points + 1))

    def _rows(self, cols: _Columns, allow_late: bool, lateness_cap: float | None,
              cost_cap: float | None) -> _Rows:
        """Each shard starts once; GPUs per step; the fair-share cap in its regions; the lateness and cost caps
        of the second and third passes."""
        import highspy

        inf = highspy.kHighsInf
        grid, rows = self.grid, _Rows()
        for c, members in enumerate(self.classes):  # every shard of a class starts exactly once
            idx = np.flatnonzero(cols.owner == c)
            rows.add(idx, np.ones(len(idx)), len(members), len(members))
        # capacity: the shards running during grid step tau use at most gpus[tau] GPUs
        running, bounds = self._running(cols)
        for tau in range(grid.points):
            idx = running[bounds[tau]:bounds[tau + 1]]
            if cols.upper[idx].sum() > int(grid.gpus[tau]):
                rows.add(idx, np.ones(len(idx)), -inf, float(grid.gpus[tau]))
        class_account = np.array([m[0].account for m in self.classes], dtype=object)
        class_free = np.array([m[0].tier != "paid" for m in self.classes])
        capped_accounts = sorted(self.regions) if self.free_cap is not None else []
        for account in capped_accounts:  # fair share where another account's work waits
            mine = (class_account[cols.owner] == account) & class_free[cols.owner]
            for tau in range(min(grid.points, self.regions[account])):
                idx = running[bounds[tau]:bounds[tau + 1]]
                idx = idx[mine[idx]]
                if cols.upper[idx].sum() > self.free_cap:
                    rows.add(idx, np.ones(len(idx)), -inf, float(self.free_cap))
        if allow_late and lateness_cap is not None:
            idx = np.flatnonzero(cols.late)
            rows.add(idx, cols.late[idx], -inf, lateness_cap + 0.5)
        if cost_cap is not None:
            rows.add(np.arange(cols.n), cols.cost, -inf, cost_cap)
        return rows

    def solve(self, allow_late: bool, lateness_cap: float | None, cost_cap: float | None = None,
              ) -> tuple[dict[str, int] | None, str, float | None, float]:
        """One HiGHS solve: (starts by shard key, status, dual bound, objective value)."""
        import highspy

        h = self._highs()
        cols = self._columns(allow_late)
        if cols is None:
            return None, "infeasible", None, 0.0
        n = cols.n
        h.addVars(n, np.zeros(n), cols.upper.astype(float))
        objective = cols.late if allow_late and lateness_cap is None else cols.cost
        if cost_cap is not None:  # paid first among plans as cheap as the best: paid start points, summed
            objective = np.where(self.class_paid[cols.owner], cols.point.astype(float), 0.0)
        h.changeColsCost(n, np.arange(n, dtype=np.int32), objective)
        h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
        self._rows(cols, allow_late, lateness_cap, cost_cap).load(h)
        h.run()
        return self._solution(h, cols)

    def _solution(self, h: Any, cols: _Columns) -> tuple[dict[str, int] | None, str, float | None, float]:
        """HiGHS's answer as starts per shard: each class's starts go to its shards, earliest first."""
        import highspy

        status = h.getModelStatus()
        info = h.getInfo()
        if status == highspy.HighsModelStatus.kInfeasible:
            return None, "infeasible", None, 0.0
        if info.primal_solution_status != 2:  # no feasible solution found in the time limit
            return None, "unknown", None, 0.0
        y = np.rint(np.asarray(h.getSolution().col_value[:cols.n])).astype(int)
        found: dict[str, int] = {}
        queues = {c: list(members) for c, members in enumerate(self.classes)}
        for col in np.flatnonzero(y > 0):
            for _ in range(int(y[col])):
                found[queues[int(cols.owner[col])].pop(0).key] = int(cols.point[col])
        label = "optimal" if status == highspy.HighsModelStatus.kOptimal else "feasible"
        return found, label, float(info.mip_dual_bound), float(info.objective_function_value)

    def paid_first(self, found: dict[str, int], status: str, bound: float | None, allow_late: bool,
                   lateness_cap: float | None, cost: float) -> tuple[dict[str, int], str, float | None]:
        """Among plans no dearer (and no later) than the one found, the one that starts paid work earliest:
        paid before free as a priority that never costs a GPU-hour."""
        paid = {d.key for m, is_paid in zip(self.classes, self.class_paid, strict=True) if is_paid for d in m}
        paid_starts = [k for key, k in found.items() if key in paid]
        free_starts = [k for key, k in found.items() if key not in paid]
        if not paid_starts or not free_starts or min(free_starts) >= max(paid_starts):
            return found, status, bound  # already paid first (or only one tier)
        earlier, _, _, _ = self.solve(allow_late, lateness_cap, cost_cap=cost + max(1e-9, 1e-9 * abs(cost)))
        return (earlier if earlier is not None else found), status, bound

    def cheapest(self) -> tuple[dict[str, int] | None, str, float | None, bool, float | None, float]:
        """The least-cost plan (least late first when deadlines cannot all be met) under the current regions."""
        found, status, bound, value = self.solve(allow_late=False, lateness_cap=None)
        if found is not None or status == "unknown":
            return found, status, bound, False, None, value
        # deadlines cannot all be met: least (weighted) lateness first, then least cost at that lateness
        found, status, _, least_late = self.solve(allow_late=True, lateness_cap=None)
        if found is None:
            return None, status, None, True, None, 0.0
        best, status2, bound2, value = self.solve(allow_late=True, lateness_cap=least_late)
        if best is None:
            return found, "feasible", None, True, least_late, float("nan")
        return best, status2 if status == "optimal" else "feasible", bound2, True, least_late, value

    def holds(self, starts: dict[str, int]) -> bool:
        """The cap held wherever another account waited on this solution; else the regions grow."""
        measured = cap_regions(self.grid, self.demands, starts, self.free_cap)
        if all(measured.get(a, 0) <= self.regions.get(a, 0) for a in measured):
            return True
        self.regions.update({a: max(self.regions.get(a, 0), measured.get(a, 0)) for a in measured})
        return False

    def starts(self, rounds: int) -> tuple[dict[str, int] | None, str, float | None]:
        """Solve, measure where the cap binds, re-solve with the grown regions (at most `rounds` times), then
        the paid-first pass on a solution that holds the cap."""
        for round_ in range(max(1, rounds)):
            last = round_ == max(1, rounds) - 1
            found, status, bound, allow_late, lateness_cap, value = self.cheapest()
            if found is None:
                return found, status, bound
            if not self.holds(found) and not last:
                continue
            if value != value:  # a late plan HiGHS could not make cheaper: kept as found
                return found, status, bound
            ordered, status, bound = self.paid_first(found, status, bound, allow_late, lateness_cap, value)
            if last or ordered is found or self.holds(ordered):
                return ordered, status, bound
        return found, status, bound  # not reached: the last round returns


def _milp_starts(grid: _Grid, demands: Sequence[ShardDemand], overhead: float, time_limit_s: float | None,
                 threads: int, free_cap: int | None = None, node_limit: int | None = None,
                 cap_until: dict[str, int] | None = None, rounds: int = 1,
                 ) -> tuple[dict[str, int] | None, str, float | None]:
    """Exact plan as a time-indexed MIP solved by HiGHS.

    y[c, k] = how many shards of class c start at grid point k. Aggregating interchangeable shards
    into one integer removes the solver's symmetry (a batch's shards are mostly the same size):
    157 shards of 3 kinds solve in well under a second instead of a minute. Work-conserving fair share:
    account A's free shards running at grid step k are at most the cap for k < cap_until[A] (another
    account's work still waits there). The regions are measured on each solution and the MIP solved again
    with the grown regions, at most `rounds` times; the paid-first pass runs only on a solution that already
    holds the cap (it ran on every round before: 3 HiGHS solves instead of 6 on a 783-shard night). Modelled
    inside the MIP (a binary "others still wait" profile per account) the same cap took 10 s instead of
    0.5 s on 315 shards.
    """
    model = _MilpModel(grid, demands, overhead, time_limit_s, threads, free_cap, node_limit, cap_until)
    return model.starts(rounds)


def _greedy_grown(prepared: _Prepared, now: datetime, overhead: float,
                  **options: object) -> dict[str, int]:
    """Greedy starts; when a unit finds no room the horizon grows by a day and greedy runs again."""
    while True:
        try:
            return greedy_starts(prepared.grid, prepared.demands, overhead, **options)
        except _NoRoom:
            prepared.windows = extend_windows(prepared.windows, HORIZON_GROWTH_HOURS)
            prepared.grid = _grid_for(now, prepared.windows, prepared.step_minutes)
            prepared.notes.append(f"horizon grown to {prepared.hours} hours for the greedy pass")


def plan_shards(demands: Sequence[ShardDemand], windows: Sequence[Window], now: datetime, *,
                step_minutes: int = 15, overhead: float = DEFAULT_OVERHEAD, exact_max_shards: int = 2000,
                time_limit_s: float | None = 10.0, workers: int = 2, method: str = "auto",
                free_cap: int | None = None, node_limit: int | None = None,
                max_inflation: float = MAX_INFLATION) -> Plan:
    """The plan: `method` is auto (exact when small enough, greedy otherwise), exact or greedy. Never
    raises for too much work: the horizon grows and the plan names the late shards.

    `free_cap`: most free-tier shards of one account running at once while another account's work
    waits (None: no fair-share cap). `time_limit_s` bounds HiGHS by wall clock (None: no limit);
    `node_limit` bounds it by branch-and-bound nodes, which stops at the same point on every machine
    (tests use it, never the clock). `max_inflation`: the most grid rounding may add to a unit's work."""
    began = time.perf_counter()
    if not demands:
        return Plan([], "empty", "empty", 0.0)
    if len({d.key for d in demands}) != len(demands):
        raise ValueError("shard keys must be unique")
    if any(d.gpu_seconds < 0 for d in demands):
        raise ValueError("GPU-seconds are non-negative")
    if free_cap is not None and free_cap < 1:
        raise ValueError("the fair-share cap is at least 1")
    prepared = _prepare(demands, windows, now, step_minutes, max_inflation)
    greedy = _greedy_grown(prepared, now, overhead, free_cap=free_cap)
    grid, units = prepared.grid, prepared.units

    def done(placed: list[Assignment], solver: str, status: str, bound: float | None = None,
             notes: Sequence[str] = ()) -> Plan:
        return Plan(_expand(grid, units, placed, overhead), solver, status, time.perf_counter() - began, bound,
                    [*prepared.notes, *notes], prepared.step_minutes, prepared.max_inflation, prepared.hours)

    fallback = _assign_slots(grid, prepared.demands, greedy, overhead, free_cap)
    if method == "greedy" or (method == "auto" and len(prepared.demands) > exact_max_shards):
        return done(fallback, "greedy", "greedy")
    # fair share where others wait, as measured on the greedy plan, then on each solution (at most 3 rounds)
    regions = cap_regions(grid, prepared.demands, greedy, free_cap)
    found, status, bound = _milp_starts(grid, prepared.demands, overhead, time_limit_s, workers, free_cap,
                                        node_limit, regions, rounds=3)
    if found is None:
        return done(fallback, "greedy", "greedy", notes=[f"HiGHS gave no plan ({status}); greedy plan used"])
    exact = _assign_slots(grid, prepared.demands, found, overhead, free_cap)
    if status != "optimal" and _rank(fallback) < _rank(exact):
        return done(fallback, "greedy", "greedy", bound,
                    [f"HiGHS stopped at its limit ({status}); the greedy plan was better"])
    return done(exact, "highs", status, bound)


def _rank(assignments: Sequence[Assignment]) -> tuple[float, float]:
    """Weighted lateness first, cost second: how two plans compare."""
    late = sum((PAID_LATENESS_WEIGHT if a.tier == "paid" else 1) * max(0.0, -a.slack_seconds) for a in assignments)
    return late, sum(a.cost_usd for a in assignments)


def first_come_first_served(demands: Sequence[ShardDemand], windows: Sequence[Window], now: datetime, *,
                            step_minutes: int = 15, overhead: float = DEFAULT_OVERHEAD,
                            max_inflation: float = MAX_INFLATION) -> Plan:
    """The baseline: everything runs as soon as a GPU is free, in submission order (same units and grid)."""
    began = time.perf_counter()
    if not demands:
        return Plan([], "empty", "empty", 0.0)
    prepared = _prepare(demands, windows, now, step_minutes, max_inflation)
    order = sorted(prepared.demands, key=lambda d: (d.submitted_at, d.key))
    relaxed = [ShardDemand(d.key, "paid", d.gpu_seconds, d.deadline, d.submitted_at, d.batch_id) for d in order]
    starts = _greedy_grown(prepared, now, overhead, asap=True, order=relaxed)
    placed = _assign_slots(prepared.grid, prepared.demands, starts, overhead)
    return Plan(_expand(prepared.grid, prepared.units, placed, overhead), "fcfs", "baseline",
                time.perf_counter() - began, notes=prepared.notes, step_minutes=prepared.step_minutes,
                max_inflation=prepared.max_inflation, horizon_hours=prepared.hours)


def horizon_hours(now: datetime, demands: Sequence[ShardDemand], gpus: int, minimum: int = 24,
                  step_minutes: int = 15) -> int:
    """Enough hourly windows to hold every deadline plus all the work once more (room for late work),
    counting each shard as rounded up to the grid (packing only shortens that). `plan_shards` grows the
    horizon itself when this is not enough (e.g. a window with fewer GPUs)."""
    if not demands:
        return minimum
    latest = max(d.deadline for d in demands)
    to_deadline = math.ceil(max(0.0, (latest - now).total_seconds()) / 3600)
    groups = {(d.tier, d.account, d.deadline) for d in demands}  # packing rounds once per group at most
    work_s = sum(d.gpu_seconds for d in demands) * (1 + MAX_INFLATION) + len(groups) * step_minutes * 60
    work = math.ceil(work_s / 3600 / gpus) + math.ceil(max(d.gpu_seconds for d in demands) / 3600)
    return max(minimum, to_deadline + work + 2)
