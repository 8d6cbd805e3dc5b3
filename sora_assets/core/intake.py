"""Intake of one inbox file: batch id, immutable copy, shard files, or quarantine with a reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sora_assets.core.batch import (
    ROW_COLUMN,
    BatchFileError,
    batch_format,
    batch_id_for,
    parse_batch,
    plan_shards,
    rows_to_jsonl,
    shard_key,
)
from sora_assets.core.fsutil import atomic_write_bytes, atomic_write_json, sha256_bytes
from sora_assets.core.home import Home

IGNORED_PREFIXES = (".", "~")
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


@dataclass
class IngestResult:
    source_name: str
    status: str  # registered | duplicate | quarantined
    batch_id: str | None = None
    shard_keys: list[str] = field(default_factory=list)
    shard_tiers: dict[str, str] = field(default_factory=dict)
    shard_accounts: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    reason: str | None = None


def inbox_candidates(home: Home) -> list[Path]:
    """Complete files waiting in the inbox (writers drop files atomically or under a temp name)."""
    if not home.inbox.exists():
        return []
    return sorted(p for p in home.inbox.iterdir()
                  if p.is_file() and not p.name.startswith(IGNORED_PREFIXES)
                  and not p.name.lower().endswith(IGNORED_SUFFIXES))


def safe_file_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "file"
    return cleaned[:100]


def quarantine_file(home: Home, source: Path, reason: str) -> Path:
    """Move a wholly bad file out of the inbox, with a reason file beside it; nothing is lost."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = home.confine(home.quarantine / "files" / f"{stamp}-{safe_file_name(source.name)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    source.replace(target)
    atomic_write_json(target.with_name(target.name + ".reason.json"),
                      {"source_name": source.name, "reason": reason, "quarantined_at": stamp})
    return target


def read_batch_record(home: Home, batch_id: str) -> dict | None:
    path = home.batches / batch_id / "batch.json"
    return json.loads(path.read_text()) if path.exists() else None


def ingest_file(home: Home, source: Path, shard_size: int) -> IngestResult:
    """Register one inbox file as a batch; the file leaves the inbox whatever happens."""
    result = IngestResult(source_name=source.name, status="quarantined")
    try:
        fmt = batch_format(source)
        content = source.read_bytes()
        batch_id = batch_id_for(source.name, content)
        result.batch_id = batch_id
        existing = read_batch_record(home, batch_id)
        if existing is not None:
            source.unlink()
            result.status = "duplicate"
            result.shard_keys = list(existing["shards"])
            result.shard_tiers = dict(existing["shards"])
            result.shard_accounts = dict(existing.get("accounts", {}))
            result.rows = existing["rows"]
            return result
        frame = parse_batch(content, fmt)
    except BatchFileError as exc:
        result.reason = str(exc)
        quarantine_file(home, source, result.reason)
        return result

    batch_dir = home.confine(home.batches / batch_id)
    source_copy = batch_dir / f"source.{fmt}"
    atomic_write_bytes(source_copy, content, mode=0o444)  # immutable copy of what was submitted
    shards = plan_shards(frame, shard_size)
    records = frame.to_dict(orient="records")
    by_row = {int(r[ROW_COLUMN]): r for r in records}
    for shard in shards:
        key = shard_key(batch_id, shard.index)
        rows = [{k: v for k, v in by_row[n].items() if v is not None} for n in shard.row_numbers]
        atomic_write_bytes(batch_dir / "shards" / f"{key}.jsonl", rows_to_jsonl(rows), mode=0o444)
        result.shard_keys.append(key)
        result.shard_tiers[key] = shard.tier
        result.shard_accounts[key] = shard.account
    atomic_write_json(batch_dir / "batch.json", {
        "batch_id": batch_id, "source_name": source.name, "source_sha256": sha256_bytes(content),
        "format": fmt, "rows": len(frame), "shards": result.shard_tiers, "accounts": result.shard_accounts,
        "submitted_at": datetime.now(UTC).isoformat(),
    })
    source.unlink()
    result.status = "registered"
    result.rows = len(frame)
    return result


def shard_rows_path(home: Home, partition_key: str) -> Path:
    from sora_assets.core.batch import batch_id_of_key

    return home.batches / batch_id_of_key(partition_key) / "shards" / f"{partition_key}.jsonl"
