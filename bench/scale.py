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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--validate-rows", type=int, default=5_000, help="rows for the validate timing")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from dagster import build_sensor_context
    from dagster._core.test_utils import instance_for_test

    from sora_assets.core.batch import parse_batch
    from sora_assets.core.home import Home
    from sora_assets.core.validation import validate_rows
    from sora_assets.defs.intake import inbox_sensor
    from sora_assets.defs.launching import due_runs
    from sora_assets.defs.partitions import SHARDS
    from sora_assets.planning import build_plan, plan_document, save_plan
    from sora_assets.resources.home import default_resources
    from sora_assets.resources.planner import PlannerResource

    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
                     "date": datetime.now(UTC).date().isoformat(), "rows": args.rows}
    content = batch_lines(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.from_env(Path(tmp) / "home").ensure()
        resources = default_resources(home)
        model = resources["video_model"]

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
            planned = {"home": resources["home"], "planner": PlannerResource(launch_mode="planned")}
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
                plan, seconds = timed(lambda: build_plan(home, planner, model, resources["warehouse"],
                                                          resources["store"], now))  # noqa: B023
                results[label] = {"seconds": round(seconds, 2), "solve_s": round(plan.plan.solve_seconds, 2),
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
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
