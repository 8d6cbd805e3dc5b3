"""The window solver: which shard runs when, on which GPU, at the least cost that meets deadlines.

Time is cut into a grid (15 minutes by default) over hourly price windows. Each shard is one run on
one GPU for its estimated GPU-seconds, starting on a grid point. The exact plan is a time-indexed
MIP solved by HiGHS: a binary per (shard, start point), each shard starts once, the shards running in
a grid step use at most that window's GPUs, and paid-before-free as "no free shard starts before the
last paid shard has started". Fair share: with `free_cap` set, the free shards of one account running
in any grid step number at most the cap (paid work is uncapped). At most G overlapping runs is
exactly "G parallel GPUs", so every plan maps onto GPU slots (interval-graph colouring by start time).
When deadlines cannot all be met the model minimises lateness first (paid lateness weighted above
free) and cost second, and the plan names the late shards.

The greedy fallback (for instances too large for the exact model, or when the solver times out)
places shards paid-first, earliest deadline first, each at its cheapest start that still fits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from sora_assets.core.batch import TIER_ORDER
from sora_assets.core.cost import DEFAULT_OVERHEAD, PriceCurve, window_start
from sora_assets.core.stdio import native_stdout_to_stderr

PAID_LATENESS_WEIGHT = 100  # one grid step of paid lateness outweighs 100 steps of free lateness


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


def _order(demands: Sequence[ShardDemand]) -> list[ShardDemand]:
    return sorted(demands, key=lambda d: (TIER_ORDER.get(d.tier, 1), d.deadline, -d.gpu_seconds, d.key))


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


def _held_by_cap(grid: _Grid, by_key: dict[str, ShardDemand], starts: dict[str, int], overhead: float,
                 free_cap: int) -> set[str]:
    """Free shards the fair-share cap delayed: an earlier start at no higher cost had a GPU free for the
    whole run, but the shard's account already had `free_cap` free shards running in that time."""
    running = np.zeros(grid.points, dtype=int)
    account_running: dict[str, np.ndarray] = {}
    for key, start in starts.items():
        d = by_key[key]
        span = slice(start, start + grid.duration_points(d.gpu_seconds))
        running[span] += 1
        if d.tier != "paid":
            account_running.setdefault(d.account, np.zeros(grid.points, dtype=int))[span] += 1
    held = set()
    for key, start in starts.items():
        d = by_key[key]
        if d.tier == "paid" or start == 0:
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
        if (spare & at_cap & no_dearer).any():
            held.add(key)
    return held


def _check_fits(grid: _Grid, demands: Sequence[ShardDemand]) -> None:
    total_points = sum(grid.duration_points(d.gpu_seconds) for d in demands)
    if total_points > int(grid.gpus.sum()):
        raise ValueError(f"the horizon is too short: {total_points} GPU grid steps of work, "
                         f"{int(grid.gpus.sum())} available; plan over more windows")
    longest = max(grid.duration_points(d.gpu_seconds) for d in demands)
    if longest > grid.points:
        raise ValueError("a shard is longer than the whole horizon")


def _rest_fits(free: np.ndarray, rest_ends: np.ndarray, rest_lengths: np.ndarray, rest_free_tier: np.ndarray,
               free_from: int) -> bool:
    """Necessary condition that the shards still to place can meet their deadlines (fluid capacity):
    work due by each deadline point fits in the GPU steps left before it; free work only counts the
    steps from `free_from` (the last paid start) on."""
    if len(rest_ends) == 0:
        return True
    prefix = np.concatenate([[0], np.cumsum(free)])
    order = np.argsort(rest_ends, kind="stable")
    ends, lengths, is_free = rest_ends[order], rest_lengths[order], rest_free_tier[order]
    if (np.cumsum(lengths) > prefix[ends]).any():
        return False
    ends_f, lengths_f = ends[is_free], lengths[is_free]
    room = prefix[ends_f] - prefix[min(free_from, len(free))]
    return not (np.cumsum(lengths_f) > room).any()


def greedy_starts(grid: _Grid, demands: Sequence[ShardDemand], overhead: float,
                  asap: bool = False, order: Sequence[ShardDemand] | None = None,
                  lookahead: int = 64, free_cap: int | None = None) -> dict[str, int]:
    """Cheapest feasible start per shard in priority order; `asap` = earliest start (first come, first served).

    A start is taken only if the shards still to place can, by fluid capacity, still meet their
    deadlines; the `lookahead` cheapest candidates are tried before giving up on that guard.
    """
    free = grid.gpus.astype(int).copy()
    share: dict[str, np.ndarray] = {}  # per account: free-tier slots left under the fair-share cap
    starts: dict[str, int] = {}
    last_paid_start = 0
    ordered = list(order) if order is not None else _order(demands)
    lengths = np.array([grid.duration_points(d.gpu_seconds) for d in ordered], dtype=int)
    latest = np.array([grid.latest_start(d.gpu_seconds, d.deadline) for d in ordered], dtype=int)
    ends = np.clip(latest + lengths, 0, grid.points)
    is_free = np.array([d.tier != "paid" for d in ordered], dtype=bool)
    for position, d in enumerate(ordered):
        length = int(lengths[position])
        n = grid.points - length + 1
        window_min = np.lib.stride_tricks.sliding_window_view(free, length).min(axis=1)[:n]
        fits = window_min >= 1
        capped = free_cap is not None and d.tier != "paid"
        if capped:
            left = share.setdefault(d.account, np.full(grid.points, free_cap, dtype=int))
            fits &= np.lib.stride_tricks.sliding_window_view(left, length).min(axis=1)[:n] >= 1
        earliest = last_paid_start if d.tier != "paid" else 0
        fits[:earliest] = False
        candidates = np.flatnonzero(fits)
        if len(candidates) == 0:
            raise ValueError(f"no room for shard {d.key} in the horizon; plan over more windows")
        start = int(candidates[0])  # ASAP, and the fallback when no start meets the deadline
        on_time = candidates[candidates <= latest[position]]
        if not asap and len(on_time):
            costs = grid.cost_table(d.gpu_seconds, overhead)[on_time]
            ranked = on_time[np.argsort(costs, kind="stable")]  # equal costs: earliest first
            start = int(ranked[0])
            rest = slice(position + 1, None)
            for candidate in ranked[:lookahead]:
                trial = free.copy()
                trial[candidate:candidate + length] -= 1
                paid_from = max(last_paid_start, int(candidate)) if d.tier == "paid" else last_paid_start
                if _rest_fits(trial, ends[rest], lengths[rest], is_free[rest], paid_from):
                    start = int(candidate)
                    break
        free[start:start + length] -= 1
        if capped:
            share[d.account][start:start + length] -= 1
        starts[d.key] = start
        if d.tier == "paid":
            last_paid_start = max(last_paid_start, start)
    return starts


def _classes(grid: _Grid, demands: Sequence[ShardDemand]) -> list[list[ShardDemand]]:
    """Shards that are interchangeable for the solver (tier, GPU-seconds, deadline point, and for free shards
    the account, which the fair-share cap counts) share a class."""
    groups: dict[tuple, list[ShardDemand]] = {}
    for d in sorted(demands, key=lambda d: d.key):
        signature = (d.tier == "paid", "" if d.tier == "paid" else d.account, round(d.gpu_seconds, 6),
                     grid.latest_start(d.gpu_seconds, d.deadline))
        groups.setdefault(signature, []).append(d)
    return list(groups.values())


def _milp_starts(grid: _Grid, demands: Sequence[ShardDemand], overhead: float, time_limit_s: float | None,
                 threads: int, free_cap: int | None = None, node_limit: int | None = None,
                 ) -> tuple[dict[str, int] | None, str, float | None]:
    """Exact plan as a time-indexed MIP solved by HiGHS.

    y[c, k] = how many shards of class c start at grid point k. Aggregating interchangeable shards
    into one integer removes the solver's symmetry (a batch's shards are mostly the same size):
    157 shards of 3 kinds solve in well under a second instead of a minute. Paid-before-free uses
    two monotone binary profiles: a[k] "a paid shard may start at k" (non-increasing), b[k] "a free
    shard may start at k" (non-decreasing), with a[k+1] + b[k] <= 1.
    """
    import highspy

    classes = _classes(grid, demands)
    paid_classes = [c for c, members in enumerate(classes) if members[0].tier == "paid"]
    free_classes = [c for c, members in enumerate(classes) if members[0].tier != "paid"]
    ordering = bool(paid_classes and free_classes)

    def solve(allow_late: bool, lateness_cap: float | None) -> tuple[dict[str, int] | None, str, float | None,
                                                                      float]:
        with native_stdout_to_stderr():  # highspy 1.16 prints a banner to fd 1 when constructed
            h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        if time_limit_s is not None:  # wall clock: the same instance may stop at another point under load
            h.setOptionValue("time_limit", float(time_limit_s))
        if node_limit is not None:  # a deterministic bound: the same work on every machine
            h.setOptionValue("mip_max_nodes", int(node_limit))
        h.setOptionValue("threads", int(threads))
        h.setOptionValue("mip_rel_gap", 1e-6)
        cost, late, owner, point, upper_count = [], [], [], [], []
        for c, members in enumerate(classes):
            d = members[0]
            table = grid.cost_table(d.gpu_seconds, overhead)
            latest = grid.latest_start(d.gpu_seconds, d.deadline)
            upper = len(table) - 1 if allow_late else min(len(table) - 1, latest)
            if upper < 0:
                return None, "infeasible", None, 0.0
            ks = np.arange(upper + 1)
            cost.append(table[: upper + 1])
            weight = PAID_LATENESS_WEIGHT if d.tier == "paid" else 1
            late.append(np.maximum(0, ks - latest) * weight)
            owner.append(np.full(upper + 1, c))
            point.append(ks)
            upper_count.append(np.full(upper + 1, len(members)))
        cost_v, late_v = np.concatenate(cost), np.concatenate(late).astype(float)
        owner_v, point_v = np.concatenate(owner), np.concatenate(point)
        n = len(cost_v)
        flags = 2 * grid.points if ordering else 0  # a[0..K-1], b[0..K-1]
        total = n + flags
        h.addVars(total, np.zeros(total), np.concatenate([np.concatenate(upper_count).astype(float),
                                                           np.ones(flags)]))
        objective = late_v if allow_late and lateness_cap is None else cost_v
        h.changeColsCost(total, np.arange(total, dtype=np.int32), np.concatenate([objective, np.zeros(flags)]))
        h.changeColsIntegrality(total, np.arange(total, dtype=np.int32),
                                np.full(total, highspy.HighsVarType.kInteger))
        rows_lo, rows_hi, rows = [], [], []  # each row: (indices, values)

        def row(idx: np.ndarray, values: np.ndarray, lo: float, hi: float) -> None:
            rows.append((np.asarray(idx), np.asarray(values, dtype=float)))
            rows_lo.append(lo)
            rows_hi.append(hi)

        inf = highspy.kHighsInf
        for c, members in enumerate(classes):  # every shard of a class starts exactly once
            idx = np.flatnonzero(owner_v == c)
            row(idx, np.ones(len(idx)), len(members), len(members))
        # capacity: the shards running during grid step tau use at most gpus[tau] GPUs
        lengths = np.array([grid.duration_points(m[0].gpu_seconds) for m in classes])[owner_v]
        cols = np.repeat(np.arange(n), lengths)
        taus = np.repeat(point_v, lengths) + (np.arange(len(cols)) - np.repeat(np.cumsum(lengths) - lengths,
                                                                               lengths))
        order = np.argsort(taus, kind="stable")
        taus, cols = taus[order], cols[order]
        bounds = np.searchsorted(taus, np.arange(grid.points + 1))
        counts = np.concatenate(upper_count)
        for tau in range(grid.points):
            idx = cols[bounds[tau]:bounds[tau + 1]]
            if counts[idx].sum() > int(grid.gpus[tau]):
                row(idx, np.ones(len(idx)), -inf, float(grid.gpus[tau]))
        if free_cap is not None:  # fair share: one account's free shards running in a grid step <= cap
            for account in sorted({classes[c][0].account for c in free_classes}):
                mine = np.isin(owner_v, [c for c in free_classes if classes[c][0].account == account])
                for tau in range(grid.points):
                    idx = cols[bounds[tau]:bounds[tau + 1]]
                    idx = idx[mine[idx]]
                    if counts[idx].sum() > free_cap:
                        row(idx, np.ones(len(idx)), -inf, float(free_cap))
        if ordering:
            a0, b0 = n, n + grid.points
            for col in range(n):
                k, c = int(point_v[col]), int(owner_v[col])
                flag = a0 + k if c in paid_classes else b0 + k
                row([col, flag], [1.0, -float(counts[col])], -inf, 0.0)  # y <= count * flag
            for k in range(grid.points - 1):
                row([a0 + k + 1, a0 + k], [1.0, -1.0], -inf, 0.0)  # a non-increasing
                row([b0 + k, b0 + k + 1], [1.0, -1.0], -inf, 0.0)  # b non-decreasing
                row([a0 + k + 1, b0 + k], [1.0, 1.0], -inf, 1.0)  # no free start before a later paid one
        if allow_late and lateness_cap is not None:
            idx = np.flatnonzero(late_v)
            row(idx, late_v[idx], -inf, lateness_cap + 0.5)
        starts = np.cumsum([0] + [len(r[0]) for r in rows])[:-1]
        h.addRows(len(rows), np.array(rows_lo), np.array(rows_hi), int(sum(len(r[0]) for r in rows)),
                  starts.astype(np.int32), np.concatenate([r[0] for r in rows]).astype(np.int32),
                  np.concatenate([r[1] for r in rows]).astype(float))
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        if status == highspy.HighsModelStatus.kInfeasible:
            return None, "infeasible", None, 0.0
        if info.primal_solution_status != 2:  # no feasible solution found in the time limit
            return None, "unknown", None, 0.0
        y = np.rint(np.asarray(h.getSolution().col_value[:n])).astype(int)
        found: dict[str, int] = {}
        queues = {c: list(members) for c, members in enumerate(classes)}
        for col in np.flatnonzero(y > 0):  # hand each class's starts to its shards, earliest first
            for _ in range(int(y[col])):
                found[queues[int(owner_v[col])].pop(0).key] = int(point_v[col])
        label = "optimal" if status == highspy.HighsModelStatus.kOptimal else "feasible"
        return found, label, float(info.mip_dual_bound), float(info.objective_function_value)

    found, status, bound, _ = solve(allow_late=False, lateness_cap=None)
    if found is not None or status == "unknown":
        return found, status, bound
    # deadlines cannot all be met: least (weighted) lateness first, then least cost at that lateness
    found, status, _, least_late = solve(allow_late=True, lateness_cap=None)
    if found is None:
        return None, status, None
    cheapest, status2, bound2, _ = solve(allow_late=True, lateness_cap=least_late)
    if cheapest is None:
        return found, "feasible", None
    return cheapest, status2 if status == "optimal" else "feasible", bound2


def plan_shards(demands: Sequence[ShardDemand], windows: Sequence[Window], now: datetime, *,
                step_minutes: int = 15, overhead: float = DEFAULT_OVERHEAD, exact_max_shards: int = 2000,
                time_limit_s: float | None = 10.0, workers: int = 2, method: str = "auto",
                free_cap: int | None = None, node_limit: int | None = None) -> Plan:
    """The plan: `method` is auto (exact when small enough, greedy otherwise), exact or greedy.

    `free_cap`: most free-tier shards of one account running at once (None: no fair-share cap).
    `time_limit_s` bounds HiGHS by wall clock (None: no limit); `node_limit` bounds it by branch-and-bound
    nodes, which stops at the same point on every machine (tests use it, never the clock)."""
    began = time.perf_counter()
    if not demands:
        return Plan([], "empty", "empty", 0.0)
    if len({d.key for d in demands}) != len(demands):
        raise ValueError("shard keys must be unique")
    if any(d.gpu_seconds < 0 for d in demands):
        raise ValueError("GPU-seconds are non-negative")
    grid = _grid_for(now, windows, step_minutes)
    _check_fits(grid, demands)
    if free_cap is not None and free_cap < 1:
        raise ValueError("the fair-share cap is at least 1")
    greedy = greedy_starts(grid, demands, overhead, free_cap=free_cap)
    if method == "greedy" or (method == "auto" and len(demands) > exact_max_shards):
        assignments = _assign_slots(grid, demands, greedy, overhead, free_cap)
        return Plan(assignments, "greedy", "greedy", time.perf_counter() - began)
    found, status, bound = _milp_starts(grid, demands, overhead, time_limit_s, workers, free_cap, node_limit)
    fallback = _assign_slots(grid, demands, greedy, overhead, free_cap)
    if found is None:
        return Plan(fallback, "greedy", "greedy", time.perf_counter() - began,
                    notes=[f"HiGHS gave no plan ({status}); greedy plan used"])
    exact = _assign_slots(grid, demands, found, overhead, free_cap)
    if status != "optimal" and _rank(fallback, demands) < _rank(exact, demands):
        return Plan(fallback, "greedy", "greedy", time.perf_counter() - began, lower_bound_usd=bound,
                    notes=[f"HiGHS stopped at its time limit ({status}); the greedy plan was better"])
    return Plan(exact, "highs", status, time.perf_counter() - began, lower_bound_usd=bound)


def _rank(assignments: Sequence[Assignment], demands: Sequence[ShardDemand]) -> tuple[float, float]:
    """Weighted lateness first, cost second: how two plans compare."""
    late = sum((PAID_LATENESS_WEIGHT if a.tier == "paid" else 1) * max(0.0, -a.slack_seconds) for a in assignments)
    return late, sum(a.cost_usd for a in assignments)


def first_come_first_served(demands: Sequence[ShardDemand], windows: Sequence[Window], now: datetime, *,
                            step_minutes: int = 15, overhead: float = DEFAULT_OVERHEAD) -> Plan:
    """The baseline: everything runs as soon as a GPU is free, in submission order."""
    began = time.perf_counter()
    if not demands:
        return Plan([], "empty", "empty", 0.0)
    grid = _grid_for(now, windows, step_minutes)
    _check_fits(grid, demands)
    order = sorted(demands, key=lambda d: (d.submitted_at, d.key))
    relaxed = [ShardDemand(d.key, "paid", d.gpu_seconds, d.deadline, d.submitted_at, d.batch_id) for d in order]
    starts = greedy_starts(grid, relaxed, overhead, asap=True, order=relaxed)
    assignments = _assign_slots(grid, demands, starts, overhead)
    return Plan(assignments, "fcfs", "baseline", time.perf_counter() - began)


def horizon_hours(now: datetime, demands: Sequence[ShardDemand], gpus: int, minimum: int = 24) -> int:
    """Enough hourly windows to hold every deadline plus all the work once more (room for late work)."""
    if not demands:
        return minimum
    latest = max(d.deadline for d in demands)
    to_deadline = math.ceil(max(0.0, (latest - now).total_seconds()) / 3600)
    work = math.ceil(sum(d.gpu_seconds for d in demands) / 3600 / gpus) + math.ceil(
        max(d.gpu_seconds for d in demands) / 3600)
    return max(minimum, to_deadline + work + 2)
