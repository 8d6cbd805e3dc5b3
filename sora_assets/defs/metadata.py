"""Dagster metadata values built from the plain summaries in `core.shard_summary`."""

from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from sora_assets.core.warehouse.shard_summary import COST_COLUMNS

_COLUMN_TYPES = {"steps": "int", "gpu_seconds": "float", "cost_usd": "float", "api_equivalent_usd": "float",
                 "cache_hit": "bool"}
_COLUMN_DESCRIPTIONS = {
    "status": "published, cache_hit, blocked, dead_letter or withheld",
    "gpu_seconds": "GPU time billed in this shard (0 for cache hits)",
    "cost_usd": "gpu_seconds x window price x (1 + overhead)",
    "api_equivalent_usd": "what a hosted API would have charged at list price",
    "store_object": "<aa>/<sha256>.mp4 under the store root",
}
COST_TABLE_SCHEMA = TableSchema(columns=[
    TableColumn(name, _COLUMN_TYPES.get(name, "string"), description=_COLUMN_DESCRIPTIONS.get(name))
    for name in COST_COLUMNS])


def cost_table(rows: list[dict[str, Any]]) -> MetadataValue:
    """The per-clip cost rows as a Dagster table, which the UI renders with its column types."""
    return MetadataValue.table([TableRecord({name: row[name] for name in COST_COLUMNS}) for row in rows],
                               schema=COST_TABLE_SCHEMA)
