"""How clip records pass between the shard's assets: the Dagster type their inputs are checked against.

Outputs are `list[ClipRecord]` (pickled by the filesystem IO manager). Inputs also accept the dicts an older
run pickled before the record existed (a re-execution from failure across an upgrade); each asset turns
them into records with `ClipRecord.coerce`.
"""

from typing import Any

from dagster import AssetIn, DagsterType

from sora_assets.core.render.clip_record import ClipRecord


def _is_clip_list(_context: Any, value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(c, ClipRecord | dict) for c in value)


CLIP_RECORDS = DagsterType(name="ClipRecords", type_check_fn=_is_clip_list, typing_type=list,
                           description="The shard's clips (core/clip_record.ClipRecord), one per accepted row.")


def clips_in(name: str) -> dict[str, AssetIn]:
    """`ins` for an asset reading the clip records of upstream asset `name`."""
    return {name: AssetIn(dagster_type=CLIP_RECORDS)}
