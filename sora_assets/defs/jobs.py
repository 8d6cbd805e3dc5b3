"""Jobs: render one shard end to end; re-plan every pending shard."""

from dagster import AssetSelection, define_asset_job

from sora_assets.defs.generation import rendered_clips
from sora_assets.defs.intake import prompt_shards
from sora_assets.defs.partitions import shards_partitions
from sora_assets.defs.planning import render_plan
from sora_assets.defs.publishing import published_clips
from sora_assets.defs.screening import screened_clips
from sora_assets.defs.sequences import sequences
from sora_assets.defs.signing import signed_clips
from sora_assets.defs.validation import validated_prompts
from sora_assets.runs import RENDER_JOB

PLAN_JOB = "plan_renders"
SHARD_ASSETS = [prompt_shards, validated_prompts, rendered_clips, screened_clips, signed_clips, published_clips,
                sequences]

render_shard_job = define_asset_job(
    RENDER_JOB, selection=AssetSelection.assets(*SHARD_ASSETS), partitions_def=shards_partitions,
    description="Validate, render, screen, sign and publish one shard, then cut its shot groups.")
plan_job = define_asset_job(PLAN_JOB, selection=AssetSelection.assets(render_plan),
                            description="Solve the render plan for every pending shard.")
