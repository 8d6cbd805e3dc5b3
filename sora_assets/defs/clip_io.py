"""How clip records pass between the shard's assets: the Dagster type their inputs are checked against.

Outputs are `list[ClipRecord]` (pickled by the filesystem IO manager). Inputs also accept the dicts an older
run pickled before the record existed (a re-execution from failure across an upgrade); each asset turns
them into records with `ClipRecord.coerce`.
"""

from collections.abc import Callable
from typing import Any

from dagster import AssetCheckSpec, AssetIn, DagsterType, asset

from sora_assets.core.render.clip_record import ClipRecord
from sora_assets.defs.catalog import owners_of
from sora_assets.defs.partitions import shards_partitions


def _is_clip_list(_context: Any, value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(c, ClipRecord | dict) for c in value)


CLIP_RECORDS = DagsterType(name="ClipRecords", type_check_fn=_is_clip_list, typing_type=list,
                           description="The shard's clips (core/render/clip_record.ClipRecord), one per accepted row.")


def clips_in(name: str) -> dict[str, AssetIn]:
    """`ins` for an asset reading the clip records of upstream asset `name`."""
    return {name: AssetIn(dagster_type=CLIP_RECORDS)}


def clip_stage(name: str, upstream: str, group: str, kinds: set[str], description: str,
               checks: dict[str, str]) -> Callable[..., Any]:
    """The `@asset` of a shard stage reading `upstream`'s clip records: partitioned by shard, owned by its group,
    with its asset checks (check name -> description) on the same partitions."""
    return asset(name=name, ins=clips_in(upstream), partitions_def=shards_partitions, group_name=group,
                 owners=owners_of(group), kinds=kinds, description=description,
                 check_specs=[AssetCheckSpec(check, asset=name, partitions_def=shards_partitions, description=text)
                              for check, text in checks.items()])
