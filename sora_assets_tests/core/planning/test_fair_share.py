"""Fair share, work-conserving: the cap on one account's free shards binds only while another account's work
waits; an account alone uses every GPU; paid is uncapped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sora_assets.core.intake.batch_files import DEFAULT_ACCOUNT, parse_batch
from sora_assets.core.intake.batch_files import plan_shards as split_batch
from sora_assets.core.planning.cost import PriceCurve
from sora_assets.core.planning.scheduling import ShardDemand, build_windows, plan_shards

NOW = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
BOUNDED = {"time_limit_s": None, "node_limit": 20_000}  # solver work, never the clock
RISING = PriceCurve(hourly=[1.0 + (h - 22) % 24 for h in range(24)])  # $1 at 22:00, $2 at 23:00, ...: earliest wins


def demands() -> list[ShardDemand]:
    heavy = [ShardDemand(f"a{i}", "free", 900, DEADLINE, NOW, "b", 1, "studio-a") for i in range(5)]
    return heavy + [ShardDemand("b0", "free", 900, DEADLINE, NOW, "b", 1, "studio-b"),
                    ShardDemand("p0", "paid", 900, DEADLINE, NOW, "b", 1, "studio-a")]


def most_running(plan, account: str) -> int:
    edges = sorted({a.start for a in plan.assignments} | {a.end for a in plan.assignments})
    return max(sum(1 for a in plan.assignments if a.account == account and a.tier == "free" and a.start <= t < a.end)
               for t in edges)


@pytest.mark.parametrize("method", ["exact", "greedy"])
def test_the_cap_never_idles_a_gpu_nobody_else_waits_for(method: str) -> None:
    """7 GPUs for 7 shards due in 15 minutes: nobody waits for a GPU, so studio-a's five free shards all start at
    once and are on time (a cap that bound here would make two of them late)."""
    windows = build_windows(NOW, 12, RISING, gpus=7)
    due = [ShardDemand(d.key, d.tier, d.gpu_seconds, NOW + timedelta(minutes=15), NOW, d.batch_id, d.clips, d.account)
           for d in demands()]
    plan = plan_shards(due, windows, NOW, method=method, free_cap=3, **BOUNDED)
    assert all(a.start == NOW for a in plan.assignments) and not plan.late
    assert most_running(plan, "studio-a") == 5 and not any(a.held_by_cap for a in plan.assignments)


@pytest.mark.parametrize("method", ["exact", "greedy"])
def test_one_account_alone_uses_every_gpu(method: str) -> None:
    """220 free shards of one studio, 8 GPUs, cap 3: the cap never binds (no other account waits); the plan
    runs 8 at a time from the cheapest hours and meets the deadline."""
    alone = [ShardDemand(f"a-s{i:03d}", "free", 1000, DEADLINE, NOW, "a", 64, "studio-a") for i in range(220)]
    windows = build_windows(NOW, 12, RISING, gpus=8)
    plan = plan_shards(alone, windows, NOW, method=method, free_cap=3, **BOUNDED)
    assert len(plan.assignments) == 220 and not plan.late
    assert not any(a.held_by_cap for a in plan.assignments)
    assert most_running(plan, "studio-a") == 8
    assert min(a.start for a in plan.assignments) == NOW


@pytest.mark.parametrize("method", ["exact", "greedy"])
def test_two_accounts_share_while_both_wait_and_no_gpu_idles(method: str) -> None:
    """4 GPUs, studio-a 12 free shards, studio-b 4, cap 3: while studio-b still has work to start, studio-a runs
    at most 3; after studio-b's last start studio-a may use every GPU; no GPU idles while work waits."""
    work = [ShardDemand(f"a{i:02d}", "free", 900, DEADLINE, NOW, "b", 1, "studio-a") for i in range(12)] + [
        ShardDemand(f"b{i}", "free", 900, DEADLINE, NOW, "b", 1, "studio-b") for i in range(4)]
    windows = build_windows(NOW, 12, RISING, gpus=4)
    plan = plan_shards(work, windows, NOW, method=method, free_cap=3, **BOUNDED)
    assert not plan.late
    last_b = max(a.start for a in plan.assignments if a.account == "studio-b")
    steps = sorted({a.start for a in plan.assignments})
    for t in steps:
        running = [a for a in plan.assignments if a.start <= t < a.end]
        assert len(running) == 4 or t >= max(a.start for a in plan.assignments), f"a GPU idles at {t}"
        if t < last_b:
            assert sum(a.account == "studio-a" for a in running) <= 3
    assert max(a.end for a in plan.assignments) == NOW + timedelta(hours=1)  # 16 shards / 4 GPUs = 4 steps
    uncapped = plan_shards(work, windows, NOW, method=method, **BOUNDED)
    assert plan.total_cost_usd == pytest.approx(uncapped.total_cost_usd)  # fairness here costs nothing


def test_batch_shards_never_mix_accounts() -> None:
    rows = b"\n".join([b'{"prompt": "x1", "account": "studio-a"}', b'{"prompt": "x2"}',
                       b'{"prompt": "x3", "account": "studio-a"}', b'{"prompt": "x4", "account": " "}',
                       b'{"prompt": "x5", "tier": "paid", "account": "studio-a"}'])
    shards = split_batch(parse_batch(rows, "jsonl"), shard_size=64)
    assert [(s.tier, s.account, s.row_numbers) for s in shards] == [
        ("paid", "studio-a", [5]), ("free", DEFAULT_ACCOUNT, [2, 4]), ("free", "studio-a", [1, 3])]
    assert np.unique([s.index for s in shards]).tolist() == [0, 1, 2]


def test_launch_selection_counts_what_is_in_progress() -> None:
    from sora_assets.core.planning.fair_share import Candidate, select_within_cap

    a = [Candidate(f"a{i}", "free", "studio-a") for i in range(5)]
    b = Candidate("b0", "free", "studio-b")
    paid = Candidate("p0", "paid", "studio-a")
    launch, held = select_within_cap([*a, b, paid], [], cap=3)
    assert [c.key for c in launch] == ["a0", "a1", "a2", "b0", "p0"] and [c.key for c in held] == ["a3", "a4"]
    launch, held = select_within_cap(a[3:], [a[1], a[2]], cap=3)  # a0 finished: one slot
    assert [c.key for c in launch] == ["a3"] and [c.key for c in held] == ["a4"]


def test_launch_selection_fills_idle_gpus_beyond_the_cap_accounts_in_turn() -> None:
    from sora_assets.core.planning.fair_share import Candidate, select_within_cap

    a = [Candidate(f"a{i}", "free", "studio-a") for i in range(10)]
    launch, held = select_within_cap(a, [], cap=3, idle_gpus=8)  # alone: every idle GPU
    assert [c.key for c in launch] == [f"a{i}" for i in range(8)] and len(held) == 2
    b = [Candidate(f"b{i}", "free", "studio-b") for i in range(10)]
    launch, held = select_within_cap([*a, *b], [], cap=3, idle_gpus=8)  # 3 + 3, then the 2 spare in turn
    assert sorted(c.key for c in launch) == ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"]
    launch, held = select_within_cap(a[3:], a[:3], cap=3, idle_gpus=0)  # no idle GPU: the cap holds
    assert launch == [] and len(held) == 7
