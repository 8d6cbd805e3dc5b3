"""Run shards in process with the real sensor and assets: the demo and tests use this, no daemon."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, build_sensor_context, materialize

from sora_assets.core.intake.inbox import read_batch_record
from sora_assets.core.storage.home import Home
from sora_assets.defs.intake import register_inbox
from sora_assets.defs.partitions import SHARDS
from sora_assets.resources.home import default_resources

REPO_SAMPLES = Path(__file__).resolve().parent.parent.parent / "data" / "samples"
DEMO_BATCH = REPO_SAMPLES / "demo_batch.jsonl"
MIXED_DEMO_BATCH = REPO_SAMPLES / "demo_mixed.jsonl"  # Wan and LTX-Video rows in one batch (`demo --mixed`)


def open_instance(home: Home) -> DagsterInstance:
    """A persistent SQLite instance under <home>/dagster, so demo runs show up in `dagster dev`."""
    home.dagster_home.mkdir(parents=True, exist_ok=True)
    return DagsterInstance.local_temp(tempdir=str(home.dagster_home),
                                      overrides={"telemetry": {"enabled": False}})


def submit_file(home: Home, source: Path) -> Path:
    """Drop a batch file into the inbox atomically (temp name, then rename) so the sensor never sees half."""
    from sora_assets.core.storage.fsutil import atomic_copy

    return atomic_copy(source, home.ensure().inbox / source.name)


@dataclass
class ShardOutcome:
    partition_key: str
    success: bool
    error: str | None = None


@dataclass
class TickOutcome:
    new_keys: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)


def tick_inbox(home: Home, instance: DagsterInstance, shard_size: int = 64) -> TickOutcome:
    """Evaluate the inbox sensor once and apply its partition requests, as the daemon would."""
    from sora_assets.resources.home import HomeResource

    resource = HomeResource(path=str(home.root), shard_size=shard_size)
    with build_sensor_context(instance=instance, resources={"home": resource}) as context:
        result = register_inbox(context, resource)
    outcome = TickOutcome()
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(SHARDS, list(request.partition_keys))
        outcome.new_keys += list(request.partition_keys)
    return outcome


def batch_shard_keys(home: Home, batch_id: str) -> list[str]:
    record = read_batch_record(home, batch_id)
    return list(record["shards"]) if record else []


def run_shards(home: Home, instance: DagsterInstance, keys: list[str], shard_size: int = 64,
               on_done: Callable[[ShardOutcome], None] | None = None,
               log_level: str = "WARNING", resource_overrides: dict[str, Any] | None = None,
               ) -> list[ShardOutcome]:
    from sora_assets.definitions import SHARD_ASSETS

    resources = {**default_resources(home, shard_size=shard_size), **(resource_overrides or {})}
    outcomes = []
    for key in keys:
        result = materialize(SHARD_ASSETS, partition_key=key, instance=instance, resources=resources,
                             raise_on_error=False, tags={"sora_assets/launched_by": "in_process"},
                             run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
        error = None
        if not result.success:
            failures = [e for e in result.all_events if e.is_step_failure]
            error = failures[0].event_specific_data.error.message.strip() if failures else "run failed"
        outcome = ShardOutcome(key, result.success, error)
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    return outcomes


def demo_batch_path(override: Path | None = None) -> Path:
    path = override or DEMO_BATCH
    if not path.exists():
        raise FileNotFoundError(f"sample batch not found at {path}")
    return path

