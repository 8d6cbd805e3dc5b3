"""Issue 19 (3): "is it published?" is asked of the warehouse resource, synced on S3.

Two homes (machines, pods) share one bucket and nothing else: the second must see the first's publish in
fair-share launch, in planned launch and in the plan, before anything syncs its copy.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import build_sensor_context

from sora_assets.defs.intake import inbox_sensor
from sora_assets.defs.launching import due_runs
from sora_assets.resources.home import default_resources
from sora_assets.resources.planner import PlannerResource
from sora_assets.services.planning import build_plan, published_shards
from sora_assets.services.runner import open_instance
from sora_assets_tests.production.test_s3_storage import (  # noqa: F401 - fixtures
    TWO_PROMPTS,
    bucket,
    fresh_home,
    render_batch,
    s3_server,
)

pytestmark = pytest.mark.slow


def test_a_shard_published_by_one_home_is_published_for_another_on_the_same_bucket(
        bucket: str, tmp_path: Path, tiny_model_dir: Path) -> None:  # noqa: F811 - fixture
    machine_a = fresh_home(tmp_path / "machine-a", tiny_model_dir)
    published = render_batch(machine_a, "kites.jsonl", TWO_PROMPTS)

    machine_b = fresh_home(tmp_path / "machine-b", tiny_model_dir)
    shutil.copytree(machine_a.keys, machine_b.keys, dirs_exist_ok=True)
    (machine_b.inbox / "kites.jsonl").write_text(TWO_PROMPTS)  # the same batch file reaches the second home
    instance = open_instance(machine_b)
    resources = {**default_resources(machine_b), "planner": PlannerResource(launch_mode="now", free_share_cap=3)}
    with build_sensor_context(instance=instance, resources=resources) as context:
        registered = inbox_sensor(context)  # fair-share launch mode: registers, and launches only unpublished
    assert [k for r in registered.dynamic_partitions_requests for k in r.partition_keys] == published
    assert registered.run_requests == []
    assert not list((machine_b.warehouse / "cost_ledger").glob("partition=*/*.parquet"))  # nothing synced yet

    warehouse = resources["warehouse"]
    assert published_shards(warehouse) == set(published)
    requests, reasons = due_runs(instance, resources["home"], PlannerResource(launch_mode="planned"), warehouse,
                                 datetime.now(UTC))
    assert requests == [] and reasons == []  # no re-plan, no second render of a published shard
    plan = build_plan(machine_b, PlannerResource(launch_mode="planned"), resources["video_model"], warehouse,
                      resources["store"], datetime.now(UTC))
    assert set(plan.estimates) == set()  # the plan leaves it out: nothing to schedule, nothing billed twice
