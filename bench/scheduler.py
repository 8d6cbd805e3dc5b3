"""Window-solver benchmark: 10,000 clips over 96 hourly windows.

A batch of 10,000 clips (30% paid at 50 steps, 70% free at 30 steps, 832x480x81, the cost model's
prior GPU-seconds) is submitted at 14:00 with an 08:00 deadline and split into 64-clip shards.
Prints, in one run: the exact plan's solve time, the greedy fallback's gap to it, and both plans'
savings against "run everything now, first come first served" on the default time-of-use curve.

    python bench/scheduler.py [--gpus 20 16] [--shard-size 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime, timedelta

from sora_assets.core.planning.cost import PriceCurve
from sora_assets.core.planning.estimates import prior_seconds_per_step
from sora_assets.core.planning.scheduling import ShardDemand, build_windows, first_come_first_served, plan_shards

CLIPS = 10_000
WINDOWS = 96
SUBMITTED = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
WAN_1_3B = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


def bench_demands(shard_size: int, paid_share: float = 0.3) -> list[ShardDemand]:
    per_step = prior_seconds_per_step(WAN_1_3B, 832, 480, 81)
    paid_clips = round(CLIPS * paid_share)
    demands = []
    for tier, clips, steps in (("paid", paid_clips, 50), ("free", CLIPS - paid_clips, 30)):
        for index, first in enumerate(range(0, clips, shard_size)):
            n = min(shard_size, clips - first)
            demands.append(ShardDemand(f"bench-{tier}-s{index:03d}", tier, n * steps * per_step, DEADLINE,
                                       SUBMITTED + timedelta(seconds=len(demands)), "bench", n))
    return demands


def run(gpus: int, shard_size: int) -> dict:
    demands = bench_demands(shard_size)
    windows = build_windows(SUBMITTED, WINDOWS, PriceCurve(), gpus=gpus)
    exact = plan_shards(demands, windows, SUBMITTED, method="exact", time_limit_s=60)
    greedy = plan_shards(demands, windows, SUBMITTED, method="greedy")
    fcfs = first_come_first_served(demands, windows, SUBMITTED)
    return {
        "gpus": gpus, "shards": len(demands), "clips": CLIPS, "windows": WINDOWS,
        "gpu_hours": round(sum(d.gpu_seconds for d in demands) / 3600, 1),
        "exact_status": exact.status, "exact_solve_s": round(exact.solve_seconds, 3),
        "exact_cost_usd": round(exact.total_cost_usd, 2), "exact_late": len(exact.late),
        "greedy_solve_s": round(greedy.solve_seconds, 4), "greedy_cost_usd": round(greedy.total_cost_usd, 2),
        "greedy_late": len(greedy.late),
        "greedy_gap_pct": round(100 * (greedy.total_cost_usd / exact.total_cost_usd - 1), 3),
        "fcfs_cost_usd": round(fcfs.total_cost_usd, 2), "fcfs_late": len(fcfs.late),
        "savings_vs_fcfs_pct": round(100 * (1 - exact.total_cost_usd / fcfs.total_cost_usd), 2),
        "greedy_savings_vs_fcfs_pct": round(100 * (1 - greedy.total_cost_usd / fcfs.total_cost_usd), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[20, 16])
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(g, args.shard_size) for g in args.gpus]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{datetime.now(UTC):%Y-%m-%d}")
    for r in results:
        print(f"{r['gpus']} GPUs, {r['shards']} shards ({r['gpu_hours']} GPU-h): exact {r['exact_status']} in "
              f"{r['exact_solve_s']} s ${r['exact_cost_usd']} (late {r['exact_late']}); greedy {r['greedy_solve_s']} s "
              f"${r['greedy_cost_usd']} (late {r['greedy_late']}, gap {r['greedy_gap_pct']}%); "
              f"FCFS ${r['fcfs_cost_usd']} (late {r['fcfs_late']}); savings exact {r['savings_vs_fcfs_pct']}%, "
              f"greedy {r['greedy_savings_vs_fcfs_pct']}%")


if __name__ == "__main__":
    main()
