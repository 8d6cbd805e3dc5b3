"""Planning: `render_plan` solves when each pending shard should render, at what cost, on which GPU."""

from datetime import UTC, datetime

from dagster import AssetExecutionContext, Config, DagsterRunStatus, MaterializeResult, MetadataValue, asset

from sora_assets.defs.catalog import PLANNING, owners_of
from sora_assets.defs.validation import validated_prompts
from sora_assets.resources.home import HomeResource
from sora_assets.resources.planner import PlannerResource
from sora_assets.resources.store import ClipStore
from sora_assets.resources.video_model import VideoModelResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.runs import ACTIVE, shards_with_runs
from sora_assets.services.planning import build_plan, plan_document, plan_rows, save_plan


class PlanConfig(Config):
    now: str = ""  # ISO 8601; empty = the wall clock. Lets tests and what-if plans pick the plan's clock.


def plan_table(document: dict, limit: int = 40) -> str:
    lines = ["| shard | tier | account | start (UTC) | GPU | est GPU s | est $ | slack h | held by cap |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a in document["assignments"][:limit]:
        lines.append(f"| {a['shard']} | {a['tier']} | {a['account']} | {a['start'][:16]} | {a['gpu_slot']} | "
                     f"{a['est_gpu_seconds']:.1f} | {a['est_cost_usd']:.4f} | {a['slack_s'] / 3600:.1f} | "
                     f"{'yes' if a['held_by_cap'] else ''} |")
    if len(document["assignments"]) > limit:
        lines.append(f"| … {len(document['assignments']) - limit} more | | | | | | | | |")
    return "\n".join(lines)


@asset(group_name=PLANNING, owners=owners_of(PLANNING), kinds={"highs"}, deps=[validated_prompts],
       description="The render plan for every pending shard: start, GPU slot and estimated cost that meet "
                   "deadlines at the least cost (HiGHS), with savings against first-come-first-served.")
def render_plan(context: AssetExecutionContext, config: PlanConfig, home: HomeResource, planner: PlannerResource,
                video_model: VideoModelResource, warehouse: ParquetWarehouse,
                store: ClipStore) -> MaterializeResult:
    now = datetime.fromisoformat(config.now) if config.now else datetime.now(UTC)
    busy = shards_with_runs(context.instance, ACTIVE + [DagsterRunStatus.FAILURE])
    result = build_plan(home.home, planner, video_model, warehouse, store, now, exclude=busy)
    document = plan_document(result)
    path = save_plan(home.home, document)
    warehouse.write("render_plan", result.plan_id, "render_plan", plan_rows(result))
    for late in document["late"]:
        context.log.warning(f"shard {late['shard']} ({late['tier']}) misses its deadline by "
                            f"{late['late_by_s'] / 3600:.2f} h")
    return MaterializeResult(metadata={
        "plan_id": result.plan_id, "shards": document["shards"], "solver": document["solver"],
        "status": document["status"], "solve_seconds": document["solve_seconds"],
        "total_cost_usd": round(document["total_cost_usd"], 4), "fcfs_cost_usd": round(document["fcfs_cost_usd"], 4),
        "savings_pct": document["savings_pct"], "late_shards": len(document["late"]), "gpus": planner.gpus,
        "free_share_cap": planner.free_share_cap, "grid_minutes": document["step_minutes"],
        "max_rounding_inflation": document["max_inflation"], "horizon_hours": document["horizon_hours"],
        "held_by_cap": sum(1 for a in document["assignments"] if a["held_by_cap"]),
        "plan_file": MetadataValue.path(str(path)), "plan": MetadataValue.md(plan_table(document)),
    })
