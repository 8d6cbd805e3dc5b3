"""golden_eval: the safety stack against its golden sets and frame fixtures, on a daily schedule."""

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from sora_assets.defs.catalog import SAFETY, owners_of
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.warehouse import ParquetWarehouse


@asset(group_name=SAFETY, owners=owners_of(SAFETY), kinds={"onnx"},
       description="Golden safety eval: must-block and must-pass prompts through the text pre-filter and labelled "
                   "frame fixtures through the frame post-filter; rows in eval_results.")
def golden_eval(context: AssetExecutionContext, warehouse: ParquetWarehouse,
                frame_safety: FrameSafetyResource) -> MaterializeResult:
    from sora_assets.core.safety.prefilter import default_prefilter
    from sora_assets.services.safety_eval import run_safety_eval

    prefilter = default_prefilter(frame_safety.policy_path or None)  # the same policy file as the frame scan
    eval_id, figures, checks = run_safety_eval(warehouse, prefilter, frame_safety)
    failed = [c.check_name for c in checks if not c.passed]
    if failed:
        context.log.error(f"golden safety eval failed: {', '.join(failed)}")
    return MaterializeResult(metadata={
        "eval_id": eval_id, "policy_version": figures.policy_version, "passed": not failed,
        "must_block_rate": figures.must_block_rate, "false_block_rate": figures.false_block_rate,
        "semantic_blocks": figures.semantic_blocks,
        "by_category": MetadataValue.json(figures.must_block_by_category),
        "frame_fixtures": MetadataValue.json(figures.frame_fixtures),
        "failed_checks": ", ".join(failed) or "none",
    })


golden_eval_job = define_asset_job("golden_eval_job", selection=AssetSelection.assets(golden_eval),
                                   description="Run the golden safety eval.")
golden_eval_schedule = ScheduleDefinition(name="golden_eval_schedule", job=golden_eval_job, cron_schedule="0 6 * * *",
                                          default_status=DefaultScheduleStatus.RUNNING,
                                          description="Daily 06:00: the safety stack against its golden sets.")
