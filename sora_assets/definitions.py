"""The one Definitions object: assets, checks, jobs, sensors and resources for the configured home."""

import os

from dagster import Definitions

from sora_assets.core.storage.home import Home
from sora_assets.defs.evaluation import golden_eval, golden_eval_job, golden_eval_schedule
from sora_assets.defs.intake import inbox_sensor
from sora_assets.defs.jobs import SHARD_ASSETS, plan_job, render_shard_job
from sora_assets.defs.launching import plan_window_sensor
from sora_assets.defs.observability import (
    alarm_sensors,
    batch_completion_sensor,
    batch_progress,
    slo_snapshot_job,
    slo_snapshot_schedule,
    slo_snapshots,
)
from sora_assets.defs.planning import render_plan
from sora_assets.executors import executor_from_env
from sora_assets.resources.home import default_resources


def build_definitions(home: Home | None = None) -> Definitions:
    return Definitions(
        assets=[*SHARD_ASSETS, render_plan, golden_eval, slo_snapshots, batch_progress],
        jobs=[render_shard_job, plan_job, golden_eval_job, slo_snapshot_job],
        sensors=[inbox_sensor, plan_window_sensor, *alarm_sensors, batch_completion_sensor],
        schedules=[golden_eval_schedule, slo_snapshot_schedule],
        resources=default_resources(home or Home.from_env()),
        executor=executor_from_env(os.environ),  # in process unless SORA_ASSETS_EXECUTOR says multiprocess/celery
    )


defs = build_definitions()
