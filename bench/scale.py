"""A 50,000-prompt night: validate, intake, plan and sensor-tick times on this machine.

Generates a benign batch (tiny shapes, 30% paid, 64 rows per shard, two studios), then in one run:
`validate_rows` over a sample of it (the `sora-assets validate` path: rules, Great Expectations once,
the text pre-filter over the whole sample), the inbox sensor's tick that registers all of it (782
shards for 50,000 rows), `build_plan` over every shard twice (cold: rows read and planned from the
shard files; warm: from the per-shard rows kept by the first), the window sensor's tick on that plan,
and one over-full night (1 GPU). Nothing is rendered; no network.

    python bench/scale.py [--rows 50000] [--validate-rows 5000] [--gpus 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

SUBJECTS = ["a red fox", "a lighthouse", "a paper boat", "an old tram", "a field of tulips", "a glass teapot",
            "a mountain lake", "a city bridge", "a sailing ship", "a desert road", "a snowy forest", "a koi pond"]
ACTIONS = ["at dawn", "in the rain", "under neon lights", "in slow motion", "seen from a drone", "at sunset",
           "in a timelapse", "through fog", "on a windy day", "at night with stars"]


def batch_lines(rows: int, seed: int = 21) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        row = {"prompt": f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)}, shot {i}", "width": 64, "height": 64,
               "num_frames": 9, "account": "studio-a" if i % 5 else "studio-b"}
        if rng.random() < 0.3:
            row["tier"] = "paid"
        lines.append(json.dumps(row))
    return "\n".join(lines).encode()


def timed(fn):  # noqa: ANN001, ANN201 - any callable
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def timed_cpu(fn):  # noqa: ANN001, ANN201 - any callable
    """Wall and user-CPU seconds: on a shared, loaded VM the CPU time is the comparable figure."""
    cpu = os.times().user
    value, wall = timed(fn)
    return value, wall, os.times().user - cpu


def history_ticks(instance, home, resources, planner, now, runs: int) -> dict:  # noqa: ANN001
    """Sensor reads with `runs` finished render runs of earlier nights stored: the live-shard queries the
    sensors use now against reading every render run (what they did before), in the same run."""
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    from sora_assets.core.ops.alarms import Thresholds
    from sora_assets.defs.launching import due_runs
    from sora_assets.runs import RENDER_JOB, shards_with_runs
    from sora_assets.services.observability import queue_signals

    began = time.perf_counter()
    for i in range(runs):
        create_run_for_test(instance, job_name=RENDER_JOB, status=DagsterRunStatus.SUCCESS,
                            tags={"dagster/partition": f"old-night-{i // 64:05d}-s{i % 64:03d}"})
    out = {"history_runs": runs, "insert_s": round(time.perf_counter() - began, 1)}
    home_resource = resources["home"]
    _, out["window_sensor_tick_s"] = timed(lambda: due_runs(instance, home_resource, planner, str(home.warehouse),
                                                            now))
    _, out["queue_alarm_tick_s"] = timed(lambda: queue_signals(home, instance, resources["warehouse"], now,
                                                               Thresholds()))
    _, out["every_run_read_s"] = timed(lambda: shards_with_runs(instance, list(DagsterRunStatus)))  # before
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def rounding_options(shards: int = 782) -> list[dict]:
    """Grid rounding, measured: the old 15-minute grid, a 1-minute grid, and packing on the 15-minute grid
    (the default), on a tiny-shape night (about 4 GPU-s per shard) and a Wan-1.3B-sized one (51 GPU-s per
    clip, 64 clips: 54 minutes per shard)."""
    from datetime import timedelta

    from sora_assets.core.planning.cost import PriceCurve
    from sora_assets.core.planning.estimates import prior_seconds_per_step
    from sora_assets.core.planning.scheduling import ShardDemand, build_windows, horizon_hours, plan_shards

    submitted = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)
    deadline = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    out = []
    for label, (w, h, f), gpus in (("tiny 64x64x9", (64, 64, 9), 8), ("wan-1.3b 832x480x81", (832, 480, 81), 48)):
        per_step = prior_seconds_per_step("m", w, h, f) * 1.05
        demands = []
        for i in range(shards):
            tier = "paid" if i % 10 < 3 else "free"
            seconds = 64 * (50 if tier == "paid" else 30) * per_step
            demands.append(ShardDemand(f"s{i:03d}", tier, seconds, deadline, submitted + timedelta(seconds=i), "b",
                                       64, "studio-a" if i % 5 else "studio-b"))
        windows = build_windows(submitted, horizon_hours(submitted, demands, gpus), PriceCurve(), gpus)
        for option, step, bound in (("15-min grid, no packing (before)", 15, 1e9), ("1-min grid, no packing", 1, 1e9),
                                    ("15-min grid + packing (default)", 15, 0.10)):
            plan = plan_shards(demands, windows, submitted, step_minutes=step, max_inflation=bound, free_cap=3,
                               time_limit_s=30.0)
            out.append({"night": label, "gpus": gpus, "option": option, "solver": f"{plan.solver}/{plan.status}",
                        "solve_s": round(plan.solve_seconds, 2), "step_min": plan.step_minutes,
                        "worst_unit_inflation_pct": round(100 * plan.max_inflation, 1),
                        "cost_usd": round(plan.total_cost_usd, 2), "late": len(plan.late)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--validate-rows", type=int, default=5_000, help="rows for the validate timing")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--history-runs", type=int, default=5_000, help="finished render runs already stored")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounding", action="store_true", help="only the grid-rounding comparison")
    args = parser.parse_args()
    if args.rounding:
        for row in rounding_options():
            print(row)
        return

    from dagster import build_sensor_context
    from dagster._core.test_utils import instance_for_test

    from sora_assets.core.intake.batch_files import parse_batch
    from sora_assets.core.intake.validation import validate_rows
    from sora_assets.core.storage.home import Home
    from sora_assets.defs.intake import inbox_sensor
    from sora_assets.defs.launching import due_runs
    from sora_assets.defs.partitions import SHARDS
    from sora_assets.resources.home import default_resources
    from sora_assets.resources.planner import PlannerResource
    from sora_assets.services.planning import build_plan, plan_document, save_plan

    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
                     "date": datetime.now(UTC).date().isoformat(), "rows": args.rows}
    content = batch_lines(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.from_env(Path(tmp) / "home").ensure()
        resources = default_resources(home)
        model = resources["video_model"]

        # the tiny model is built on first use (a deployed model never is): timed apart from the plans
        _, results["model_build_s"] = timed(model.ensure_model)
        sample = parse_batch(b"\n".join(content.split(b"\n")[:args.validate_rows]), "jsonl")
        profile = model.profile(resolve_revision=False)
        _, first = timed(lambda: validate_rows(sample.head(13), "bench", profile, tiers=model.tier_policy()))
        outcome, seconds = timed(lambda: validate_rows(sample, "bench", profile, tiers=model.tier_policy()))
        results["validate"] = {"rows": len(sample), "seconds": round(seconds, 2),
                               "ms_per_row": round(1000 * seconds / len(sample), 3),
                               "first_13_rows_incl_loading_s": round(first, 2),
                               "accepted": len(outcome.accepted), "rejected": len(outcome.rejected)}

        (home.inbox / "night.jsonl").write_bytes(content)
        (Path(tmp) / "dagster").mkdir()
        with instance_for_test(temp_dir=str(Path(tmp) / "dagster")) as instance:
            planned = {"home": resources["home"], "planner": PlannerResource(launch_mode="planned"),
                       "warehouse": resources["warehouse"]}
            with build_sensor_context(instance=instance, resources=planned) as context:
                result, seconds = timed(lambda: inbox_sensor(context))
            keys = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
            _, add_s = timed(lambda: instance.add_dynamic_partitions(SHARDS, keys))
            results["intake"] = {"shards": len(keys), "tick_s": round(seconds, 2),
                                 "register_partitions_s": round(add_s, 2)}

            now = datetime.fromisoformat(json.loads(next(home.batches.glob("*/batch.json")).read_text())
                                         ["submitted_at"])
            planner = PlannerResource(gpus=args.gpus, launch_mode="planned")
            for label in ("plan_cold", "plan_warm"):
                plan, seconds, cpu = timed_cpu(lambda: build_plan(home, planner, model, resources["warehouse"],
                                                                  resources["store"], now))  # noqa: B023
                results[label] = {"seconds": round(seconds, 2), "user_cpu_s": round(cpu, 2),
                                  "solve_s": round(plan.plan.solve_seconds, 2),
                                  "solver": plan.plan.solver, "status": plan.plan.status,
                                  "step_minutes": plan.plan.step_minutes,
                                  "max_inflation": round(plan.plan.max_inflation, 4),
                                  "late": len(plan.plan.late), "savings_pct": round(plan.savings_pct, 2)}
            save_plan(home, plan_document(plan))
            home_resource = resources["home"]
            (requests, reasons), seconds = timed(lambda: due_runs(instance, home_resource, planner,
                                                                  str(home.warehouse), now))
            results["window_sensor_tick"] = {"seconds": round(seconds, 3), "requests": len(requests),
                                             "replan_reasons": len(reasons)}
            one = PlannerResource(gpus=1, launch_mode="planned")
            plan, seconds = timed(lambda: build_plan(home, one, model, resources["warehouse"], resources["store"],
                                                     now))
            results["plan_1_gpu"] = {"seconds": round(seconds, 2), "late": len(plan.plan.late),
                                     "horizon_hours": plan.plan.horizon_hours, "solver": plan.plan.solver}
            results["history"] = history_ticks(instance, home, resources, planner, now, args.history_runs)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
