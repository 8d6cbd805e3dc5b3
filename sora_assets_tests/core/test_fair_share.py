"""Fair share in the plan: one account's free shards running at once never exceed the cap; paid is uncapped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sora_assets.core.batch import DEFAULT_ACCOUNT, parse_batch
from sora_assets.core.batch import plan_shards as split_batch
from sora_assets.core.cost import PriceCurve
from sora_assets.core.scheduling import ShardDemand, build_windows, plan_shards

NOW = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
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
def test_cap_holds_in_every_grid_step_and_is_visible(method: str) -> None:
    windows = build_windows(NOW, 12, RISING, gpus=7)
    plan = plan_shards(demands(), windows, NOW, method=method, free_cap=3, time_limit_s=None, node_limit=20_000)
    assert most_running(plan, "studio-a") == 3
    by_key = plan.by_key()
    # 7 GPUs for 7 shards: without the cap all start at 22:00; with it two of studio-a's wait (in the same
    # $1 hour: the greedy plan takes 22:15, the exact one any start of that hour)
    assert sorted(a.start for a in plan.assignments).count(NOW) == 5
    waited = sorted(k for k, a in by_key.items() if a.start > NOW)
    assert len(waited) == 2 and all(k.startswith("a") for k in waited)
    assert all(by_key[k].held_by_cap and by_key[k].end <= NOW + timedelta(hours=1) for k in waited)
    if method == "greedy":
        assert {by_key[k].start for k in waited} == {NOW + timedelta(minutes=15)}
    assert not any(a.held_by_cap for k, a in by_key.items() if k not in waited)
    assert by_key["b0"].start == NOW and by_key["p0"].start == NOW and by_key["p0"].account == "studio-a"
    uncapped = plan_shards(demands(), windows, NOW, method=method, time_limit_s=None, node_limit=20_000)
    assert most_running(uncapped, "studio-a") == 5 and not any(a.held_by_cap for a in uncapped.assignments)
    assert plan.total_cost_usd == pytest.approx(uncapped.total_cost_usd)  # 15 min later, same hour's price


def test_batch_shards_never_mix_accounts() -> None:
    rows = b"\n".join([b'{"prompt": "x1", "account": "studio-a"}', b'{"prompt": "x2"}',
                       b'{"prompt": "x3", "account": "studio-a"}', b'{"prompt": "x4", "account": " "}',
                       b'{"prompt": "x5", "tier": "paid", "account": "studio-a"}'])
    shards = split_batch(parse_batch(rows, "jsonl"), shard_size=64)
    assert [(s.tier, s.account, s.row_numbers) for s in shards] == [
        ("paid", "studio-a", [5]), ("free", DEFAULT_ACCOUNT, [2, 4]), ("free", "studio-a", [1, 3])]
    assert np.unique([s.index for s in shards]).tolist() == [0, 1, 2]


def test_launch_selection_counts_what_is_in_progress() -> None:
    from sora_assets.core.fair_share import Candidate, select_within_cap

    a = [Candidate(f"a{i}", "free", "studio-a") for i in range(5)]
    b = Candidate("b0", "free", "studio-b")
    paid = Candidate("p0", "paid", "studio-a")
    launch, held = select_within_cap([*a, b, paid], [], cap=3)
    assert [c.key for c in launch] == ["a0", "a1", "a2", "b0", "p0"] and [c.key for c in held] == ["a3", "a4"]
    launch, held = select_within_cap(a[3:], [a[1], a[2]], cap=3)  # a0 finished: one slot
    assert [c.key for c in launch] == ["a3"] and [c.key for c in held] == ["a4"]
