"""The one Definitions object: assets, checks, job, sensor and resources for the configured home."""

from dagster import AssetSelection, Definitions, define_asset_job

from sora_assets.core.home import Home
from sora_assets.defs.generation import rendered_clips
from sora_assets.defs.intake import RENDER_JOB, inbox_sensor, prompt_shards
from sora_assets.defs.partitions import shards_partitions
from sora_assets.defs.publishing import published_clips
from sora_assets.defs.screening import screened_clips
from sora_assets.defs.signing import signed_clips
from sora_assets.defs.validation import validated_prompts
from sora_assets.resources.home import default_resources

SHARD_ASSETS = [prompt_shards, validated_prompts, rendered_clips, screened_clips, signed_clips, published_clips]

render_shard_job = define_asset_job(
    RENDER_JOB, selection=AssetSelection.assets(*SHARD_ASSETS), partitions_def=shards_partitions,
    description="Validate, render, screen, sign and publish one shard.")


def build_definitions(home: Home | None = None) -> Definitions:
    return Definitions(
        assets=SHARD_ASSETS,
        jobs=[render_shard_job],
        sensors=[inbox_sensor],
        resources=default_resources(home or Home.from_env()),
    )


defs = build_definitions()
