"""Intake of one inbox file: batch id, immutable copy, shard files, or quarantine with a reason."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sora_assets.core.intake.batch_files import (
    MAX_FILE_BYTES,
    ROW_COLUMN,
    BatchFileError,
    batch_format,
    batch_id_for,
    parse_batch,
    plan_shards,
    rows_to_jsonl,
    shard_key,
)
from sora_assets.core.render import failpoints
from sora_assets.core.storage.fsutil import atomic_write_bytes, atomic_write_json, sha256_bytes
from sora_assets.core.storage.home import Home

if TYPE_CHECKING:
    import pandas as pd

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
    """Entries waiting in the inbox (writers drop files atomically or under a temp name).

    Every entry not named as a temp file is a candidate, whatever its type (checked with lstat, never
    followed): a link, FIFO, device or directory is not skipped silently but quarantined by `ingest_file`.
    """
    if not home.inbox.exists():
        return []
    return sorted(p for p in home.inbox.iterdir()
                  if not p.name.startswith(IGNORED_PREFIXES) and not p.name.lower().endswith(IGNORED_SUFFIXES))


class NotARegularFile(Exception):
    """An inbox entry that must not be read: a link, FIFO, device, socket or directory."""


def entry_problem(info: os.stat_result) -> str | None:
    """Why an inbox entry (its lstat) is not a batch file we may read; None for a plain regular file."""
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed: it could point outside the home)"
    if stat.S_ISDIR(mode):
        return "a directory, not a batch file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if info.st_nlink > 1:
        return "a hard link (its data is shared with a file outside the inbox)"
    return None


def read_inbox_file(path: Path) -> bytes:
    """The bytes of a regular inbox file, read without following links.

    Checked with lstat before opening, opened with O_NOFOLLOW|O_NONBLOCK (an entry swapped for a link or a
    FIFO after the check fails to open or is refused by fstat, never blocks), and re-checked on the open file.
    """
    problem = entry_problem(os.lstat(path))
    if problem is not None:
        raise NotARegularFile(problem)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link swapped in after the check
            raise NotARegularFile("a symbolic link (never followed: it could point outside the home)") from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        problem = entry_problem(os.fstat(handle.fileno()))
        if problem is not None:
            raise NotARegularFile(problem)
        return handle.read(MAX_FILE_BYTES + 1)  # parse_batch refuses anything larger


def safe_file_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "file"
    return cleaned[:100]


def quarantine_file(home: Home, source: Path, reason: str) -> Path:
    """Move a wholly bad inbox entry out of the inbox, with a reason file beside it; nothing is lost.

    The entry itself is renamed (a link stays a link, pointing where it did; it is never read or followed).
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = home.confine(home.quarantine / "files")
    target = folder / f"{stamp}-{safe_file_name(source.name)}"
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)  # rename(2) moves the directory entry: links are not resolved
    atomic_write_json(target.with_name(target.name + ".reason.json"),
                      {"source_name": source.name, "reason": reason, "quarantined_at": stamp})
    return target


def read_batch_record(home: Home, batch_id: str) -> dict | None:
    path = home.batches / batch_id / "batch.json"
    return json.loads(path.read_text()) if path.exists() else None


def ingest_file(home: Home, source: Path, shard_size: int) -> IngestResult:
    """Register one inbox file as a batch; the file leaves the inbox whatever happens.

    Anything that goes wrong before the batch is recorded (a non-regular entry, an unreadable file, a parse
    error at any nesting depth, RecursionError included) quarantines the entry with the error as its reason.
    """
    result = IngestResult(source_name=source.name, status="quarantined")
    batch_dir: Path | None = None
    try:
        fmt = batch_format(source)
        content = read_inbox_file(source)
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
        batch_dir = home.confine(home.batches / batch_id)
        failpoints.hit("intake.before_register", None, home.failpoints)
        _register(home, source, content, fmt, frame, batch_dir, shard_size, result)
    except (BatchFileError, NotARegularFile) as exc:
        result.reason = str(exc)
    except RecursionError:
        result.reason = "nested too deeply to parse (RecursionError)"
    except Exception as exc:  # noqa: BLE001 - the contract: the file always leaves the inbox with a reason
        result.reason = f"cannot ingest: {type(exc).__name__}: {exc}"[:500]
    else:
        source.unlink()
        result.status = "registered"
        return result
    if batch_dir is not None and not (batch_dir / "batch.json").exists():
        shutil.rmtree(batch_dir, ignore_errors=True)  # half-written shards of a batch never recorded
    result.shard_keys, result.shard_tiers, result.shard_accounts = [], {}, {}
    if os.path.lexists(source):
        quarantine_file(home, source, result.reason)
    return result


def _register(home: Home, source: Path, content: bytes, fmt: str, frame: pd.DataFrame, batch_dir: Path,
              shard_size: int, result: IngestResult) -> None:
    """Immutable source copy, shard files, then batch.json last (its presence marks the batch registered)."""
    source_copy = batch_dir / f"source.{fmt}"
    atomic_write_bytes(source_copy, content, mode=0o444)  # immutable copy of what was submitted
    shards = plan_shards(frame, shard_size)
    records = frame.to_dict(orient="records")
    by_row = {int(r[ROW_COLUMN]): r for r in records}
    for shard in shards:
        key = shard_key(result.batch_id or "", shard.index)
        rows = [{k: v for k, v in by_row[n].items() if v is not None} for n in shard.row_numbers]
        atomic_write_bytes(batch_dir / "shards" / f"{key}.jsonl", rows_to_jsonl(rows), mode=0o444)
        result.shard_keys.append(key)
        result.shard_tiers[key] = shard.tier
        result.shard_accounts[key] = shard.account
    atomic_write_json(batch_dir / "batch.json", {
        "batch_id": result.batch_id, "source_name": source.name, "source_sha256": sha256_bytes(content),
        "format": fmt, "rows": len(frame), "shards": result.shard_tiers, "accounts": result.shard_accounts,
        "submitted_at": datetime.now(UTC).isoformat(),
    })
    result.rows = len(frame)


def shard_rows_path(home: Home, partition_key: str) -> Path:
    from sora_assets.core.intake.batch_files import batch_id_of_key

    return home.batches / batch_id_of_key(partition_key) / "shards" / f"{partition_key}.jsonl"
