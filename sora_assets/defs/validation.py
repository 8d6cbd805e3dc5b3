"""Validation: the GE contract, prompt rules and the text pre-filter; rejections land in the warehouse."""

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, asset

from sora_assets.core.batch import batch_id_of_key
from sora_assets.core.prefilter import POLICY_VERSION
from sora_assets.core.validation import validate_rows
from sora_assets.defs.partitions import shards_partitions
from sora_assets.resources.video_model import VideoModelResource
from sora_assets.resources.warehouse import ParquetWarehouse


@asset(partitions_def=shards_partitions, group_name="validation", kinds={"great_expectations"},
       description="Rows that passed the shard contract and the text pre-filter, with their generation specs.")
def validated_prompts(context: AssetExecutionContext, prompt_shards: pd.DataFrame,
                      video_model: VideoModelResource, warehouse: ParquetWarehouse) -> list[dict[str, Any]]:
    key = context.partition_key
    batch_id = batch_id_of_key(key)
    outcome = validate_rows(prompt_shards, batch_id, video_model.profile(), tiers=video_model.tier_policy())
    now = datetime.now(UTC)
    warehouse.write("rejections", key, "validated_prompts", [
        {**asdict(r), "partition_key": key, "batch_id": batch_id, "recorded_at": now} for r in outcome.rejected])
    warehouse.write("safety_events", key, "validated_prompts", [
        {"partition_key": key, "batch_id": batch_id, "clip_id": None, "row": r.row, "stage": "prefilter",
         "check_name": "text_prefilter", "frame_index": None, "label": r.category, "score": 1.0,
         "action": "block", "policy_version": POLICY_VERSION, "detail": f"prompt_sha256={r.prompt_sha256}",
         "recorded_at": now} for r in outcome.blocked])
    for rejected in outcome.rejected:  # blocked prompts are logged by hash, never by text
        context.log.info(f"row {rejected.row} rejected at {rejected.stage}: {rejected.reason}")
    context.add_output_metadata({
        "accepted": len(outcome.accepted), "rejected": len(outcome.rejected),
        "blocked_by_prefilter": len(outcome.blocked),
        "expectations_passed": f"{outcome.expectations_successful}/{outcome.expectations_evaluated}",
        "warnings": sum(len(a.warnings) for a in outcome.accepted),
    })
    return [asdict(a) for a in outcome.accepted]
