"""Building, saving and reading render plans: shared by the `render_plan` asset, its sensor and the CLI.

Pending shards are read from the home (registered batches minus published shards) and estimated with
the warehouse-calibrated cost model; clips already in the cache cost nothing and are left out. Prompts
are never validated again here (that cost 233 s for 20,000 rows): a shard's rows come from what
`validated_prompts` stored for it when it has run, else from the row rules alone (types, sizes, tier
budgets; no Great Expectations, no pre-filter), and are kept per shard under `<home>/plans/rows/` so
the next plan reads one small file per shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sora_assets.core.intake.batch_files import DEFAULT_ACCOUNT, shard_file_records
from sora_assets.core.intake.deadlines import default_deadline, parse_deadline
from sora_assets.core.intake.inbox import shard_rows_path
from sora_assets.core.intake.validation import estimate_specs
from sora_assets.core.planning.estimates import StepCostModel
from sora_assets.core.planning.scheduling import (
    Plan,
    ShardDemand,
    build_windows,
    first_come_first_served,
    horizon_hours,
    plan_shards,
)
from sora_assets.core.render.acceleration import load_calibrations
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.storage.fsutil import atomic_write_json
from sora_assets.core.storage.home import Home


@dataclass
class ShardEstimate:
    key: str
    clips: int
    cached: int
    gpu_seconds: float
    sources: dict[str, int] = field(default_factory=dict)
    deadline_source: str = "default"


@dataclass
class PlanResult:
    plan_id: str
    planned_at: datetime
    plan: Plan
    baseline: Plan
    estimates: dict[str, ShardEstimate]
    gpus: int
    timezone: str
    price_sources: list[str]
    free_share_cap: int | None = None

    @property
    def savings_usd(self) -> float:
        return self.baseline.total_cost_usd - self.plan.total_cost_usd

    @property
    def savings_pct(self) -> float:
        base = self.baseline.total_cost_usd
        return 100.0 * self.savings_usd / base if base else 0.0


def registered_shards(home: Home) -> list[dict[str, Any]]:
    """Every shard of every registered batch: key, tier, batch_id, submitted_at, account."""
    shards = []
    for record_path in sorted(home.batches.glob("*/batch.json")):
        record = json.loads(record_path.read_text())
        submitted = datetime.fromisoformat(record["submitted_at"])
        accounts = record.get("accounts", {})  # batches registered before fair share have none
        for key, tier in record["shards"].items():
            shards.append({"key": key, "tier": tier, "batch_id": record["batch_id"], "submitted_at": submitted,
                           "account": accounts.get(key, DEFAULT_ACCOUNT)})
    return shards


def published_shards(warehouse: Any) -> set[str]:
    """Shards whose publishing step wrote its ledger, asked of the warehouse resource that owns them (on S3 the
    bucket, not this machine's copy). A bare folder path is read as a local warehouse."""
    if isinstance(warehouse, str | Path):
        from sora_assets.resources.warehouse import ParquetWarehouse

        warehouse = ParquetWarehouse(root=str(warehouse), db_path=str(Path(warehouse).parent / "warehouse.duckdb"))
    return warehouse.published_partitions()


# what the cost model reads per row: the shape and step count, and the preset priced by its calibration for the
# model revision (a calibrated preset divides the estimate by its measured speed-up)
ESTIMATE_FIELDS = ("model_id", "model_revision", "width", "height", "num_frames", "steps", "preset")


def _rows_fingerprint(profile: Any, tiers: Any) -> str:
    return hashlib.sha256(repr((profile, tiers, ESTIMATE_FIELDS)).encode()).hexdigest()[:16]


def shard_plan_rows(home: Home, shard: dict[str, Any], profile: Any, tiers: Any) -> list[dict[str, Any]]:
    """What the planner needs per row of a shard (cache key, size, steps, deadline), read once and kept.

    From `validated_prompts`' stored output when the shard has been validated (the rows it accepted),
    else from the row rules alone; recomputed when the model profile or tier policy changes, or when a
    rules-only record can be replaced by the validated one.
    """
    key = shard["key"]
    fingerprint = _rows_fingerprint(profile, tiers)
    cached_path = home.plans / "rows" / f"{key}.json"
    validated_path = home.dagster_io / "validated_prompts" / key
    if cached_path.exists():
        cached = json.loads(cached_path.read_text())
        if cached.get("fingerprint") == fingerprint and (cached["source"] == "validated"
                                                          or not validated_path.exists()):
            return cached["rows"]
    if validated_path.exists():  # our own IO manager's pickle of the accepted rows
        accepted = pickle.loads(validated_path.read_bytes())
        pairs = [(GenerationSpec.from_dict(a["spec"]), a["metadata"].get("deadline")) for a in accepted]
        source = "validated"
    else:
        # the records straight from JSON: the same dicts a DataFrame round trip gave, at a third of the time
        pairs = estimate_specs(shard_file_records(shard_rows_path(home, key).read_bytes()), profile, tiers)
        source = "rules"
    rows = [{"cache_key": spec.cache_key(), **{f: getattr(spec, f) for f in ESTIMATE_FIELDS},
             "deadline": None if deadline is None else str(deadline)} for spec, deadline in pairs]
    # a cache, rebuilt from the shard file if lost: replaced atomically but not fsynced (fsync was 20% of a
    # cold 782-shard plan)
    cached_path.parent.mkdir(parents=True, exist_ok=True)
    scratch = cached_path.with_name(f".{cached_path.name}.{os.getpid()}.tmp")
    scratch.write_text(json.dumps({"fingerprint": fingerprint, "source": source, "rows": rows}))
    os.replace(scratch, cached_path)
    return rows


def estimate_shard(home: Home, shard: dict[str, Any], profile: Any, tiers: Any, cost_model: StepCostModel,
                   in_cache: Any, zone: Any) -> tuple[ShardDemand, ShardEstimate]:
    rows = shard_plan_rows(home, shard, profile, tiers)
    specs, cached, seen = [], 0, set()
    deadlines = []
    for row in rows:
        if row["cache_key"] in seen:
            continue  # rendered once per shard
        seen.add(row["cache_key"])
        if in_cache(row["cache_key"]):
            cached += 1
            continue
        specs.append(row)
        if row["deadline"]:
            deadlines.append(parse_deadline(row["deadline"], shard["submitted_at"], zone))
    seconds, sources = cost_model.shard_seconds(specs)
    deadline = min(deadlines) if deadlines else default_deadline(shard["submitted_at"], zone)
    demand = ShardDemand(shard["key"], shard["tier"], seconds, deadline.astimezone(UTC), shard["submitted_at"],
                         shard["batch_id"], len(specs), shard.get("account", DEFAULT_ACCOUNT))
    return demand, ShardEstimate(shard["key"], len(rows), cached, seconds, sources,
                                 "rows" if deadlines else "default 08:00")


def build_plan(home: Home, planner: Any, video_model: Any, warehouse: Any, store: Any, now: datetime,
               exclude: set[str] = frozenset()) -> PlanResult:
    """Plan every registered shard that is neither published nor in `exclude` (running or failed)."""
    done = published_shards(warehouse) | set(exclude)
    pending = [s for s in registered_shards(home) if s["key"] not in done]
    history = warehouse.query("SELECT model, width, height, num_frames, steps, gpu_seconds, preset FROM clips "
                              "WHERE status IN ('published', 'blocked') AND gpu_seconds > 0")
    # presets priced by their measured speed-up on the model revision (`sora-assets calibrate`)
    cost_model = StepCostModel.from_history(history, load_calibrations(home.calibration))
    profile = video_model.profile(resolve_revision=True) if pending else None
    tiers = video_model.tier_policy()
    demands, estimates = [], {}
    for shard in pending:
        demand, estimate = estimate_shard(home, shard, profile, tiers, cost_model, store.has, planner.zone)
        if demand.gpu_seconds > 0:  # all cached or all rejected: nothing to schedule
            demands.append(demand)
        estimates[shard["key"]] = estimate
    prices = planner.prices(home)
    hours = horizon_hours(now, demands, planner.gpus, step_minutes=planner.step_minutes)
    windows = build_windows(now, hours, prices.curve, planner.gpus, prices.capacity)
    plan = plan_shards(demands, windows, now, step_minutes=planner.step_minutes, overhead=planner.overhead,
                       exact_max_shards=planner.exact_max_shards, time_limit_s=planner.time_limit_s,
                       node_limit=planner.node_limit,
                       free_cap=planner.free_share_cap)
    baseline = first_come_first_served(demands, windows, now, step_minutes=planner.step_minutes,
                                       overhead=planner.overhead)
    digest = hashlib.sha256(json.dumps(sorted((d.key, d.gpu_seconds) for d in demands)).encode()).hexdigest()[:8]
    plan_id = f"plan-{now.astimezone(UTC):%Y%m%dt%H%M%S}-{digest}"
    return PlanResult(plan_id, now, plan, baseline, estimates, planner.gpus, planner.timezone,
                      prices.sources, planner.free_share_cap)


def plan_rows(result: PlanResult) -> list[dict[str, Any]]:
    """Rows for the `render_plan` warehouse table."""
    rows = []
    for a in result.plan.assignments:
        estimate = result.estimates.get(a.key)
        rows.append({
            "plan_id": result.plan_id, "partition_key": a.key, "batch_id": a.batch_id, "tier": a.tier,
            "clips": estimate.clips - estimate.cached if estimate else None,
            "window_start": a.window_start, "window_end": a.window_end, "planned_start": a.start,
            "planned_end": a.end, "gpu_slot": a.gpu_slot, "est_gpu_seconds": a.gpu_seconds,
            "est_cost_usd": a.cost_usd, "deadline": a.deadline, "deadline_slack_s": a.slack_seconds,
            "late": a.slack_seconds < 0, "solver": result.plan.solver, "status": result.plan.status,
            "estimate_source": ",".join(sorted(estimate.sources)) if estimate else "",
            "recorded_at": result.planned_at, "account": a.account, "held_by_cap": a.held_by_cap,
        })
    return rows


def plan_document(result: PlanResult) -> dict[str, Any]:
    """The plan as JSON: what `sora-assets plan --format json` prints and the window sensor follows."""
    def stamp(value: datetime) -> str:
        return value.astimezone(UTC).isoformat()

    return {
        "plan_id": result.plan_id, "planned_at": stamp(result.planned_at), "solver": result.plan.solver,
        "status": result.plan.status, "solve_seconds": round(result.plan.solve_seconds, 4),
        "gpus": result.gpus, "timezone": result.timezone, "price_sources": result.price_sources,
        "shards": len(result.plan.assignments),
        "total_cost_usd": round(result.plan.total_cost_usd, 6),
        "fcfs_cost_usd": round(result.baseline.total_cost_usd, 6),
        "savings_usd": round(result.savings_usd, 6), "savings_pct": round(result.savings_pct, 2),
        "lower_bound_usd": result.plan.lower_bound_usd, "notes": result.plan.notes,
        "step_minutes": result.plan.step_minutes, "max_inflation": round(result.plan.max_inflation, 4),
        "horizon_hours": result.plan.horizon_hours,
        "free_share_cap": result.free_share_cap,
        "late": [{"shard": a.key, "tier": a.tier, "late_by_s": round(-a.slack_seconds, 1)}
                 for a in result.plan.late],
        "assignments": [{
            "shard": a.key, "batch_id": a.batch_id, "tier": a.tier, "start": stamp(a.start), "end": stamp(a.end),
            "window_start": stamp(a.window_start), "window_end": stamp(a.window_end), "gpu_slot": a.gpu_slot,
            "est_gpu_seconds": round(a.gpu_seconds, 3), "est_cost_usd": round(a.cost_usd, 6),
            "deadline": stamp(a.deadline), "slack_s": round(a.slack_seconds, 1), "account": a.account,
            "held_by_cap": a.held_by_cap} for a in result.plan.assignments],
        "estimates": {k: asdict(v) for k, v in result.estimates.items()},
    }


def save_plan(home: Home, document: dict[str, Any]) -> Path:
    path = home.plans / f"{document['plan_id']}.json"
    atomic_write_json(path, document)
    atomic_write_json(home.plans / "latest.json", document)
    return path


def latest_plan(home: Home) -> dict[str, Any] | None:
    path = home.plans / "latest.json"
    return json.loads(path.read_text()) if path.exists() else None
