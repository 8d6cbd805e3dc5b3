"""Per-attempt GPU spend of a clip: an append-only journal, so no GPU-second is lost to a crash.

A clip may be denoised by several attempts: a step retry, a re-execution, a backfill, an OOM split that
re-renders a group's clips one by one. A step checkpoint only knows the seconds spent on steps 1..k; what
a killed attempt spent after its last checkpoint (or before its first) used to vanish from the books.

Each attempt owns one small JSON file, `<work>/<shard>/spend/<clip>/<attempt>.json`, replaced atomically
(no fsync: a rename survives a killed process; only a power cut can lose the newest step) after every
denoising step with the seconds spent so far, and durably once the attempt finishes. A SIGKILL loses at
most the step in flight. The clip's bill is the sum of its attempts' files (`SpendJournal.total`), and
`published_clips` keeps every record in the `render_attempts` table: ledger GPU-seconds = sum of attempts.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sora_assets.core.storage.fsutil import atomic_write_json

SPEND_FOLDER = "spend"


@dataclass
class SpendRecord:
    """What one attempt spent on one clip so far (a `render_attempts` row, less the shard's batch id)."""

    attempt_id: str
    run_id: str
    step_key: str
    partition_key: str
    clip_id: str
    cache_key: str
    resumed_from_step: int
    steps_done: int = 0
    gpu_seconds: float = 0.0
    finished: bool = False
    updated_at: str = ""


class SpendAttempt:
    """The journal file of one attempt; `record` replaces it with the attempt's running total."""

    def __init__(self, path: Path, record: SpendRecord):
        self.path, self.record_ = path, record

    def record(self, steps_done: int, gpu_seconds: float, finished: bool = False) -> None:
        self.record_.steps_done, self.record_.gpu_seconds, self.record_.finished = steps_done, gpu_seconds, finished
        self.record_.updated_at = datetime.now(UTC).isoformat()
        atomic_write_json(self.path, asdict(self.record_), durable=finished)


class SpendJournal:
    """The spend records of one clip in one shard, written by the attempts that render it."""

    def __init__(self, work_root: Path, partition_key: str, clip_id: str, run_id: str = "", step_key: str = ""):
        self.folder = shard_folder(work_root, partition_key) / clip_id
        self.partition_key, self.clip_id, self.run_id, self.step_key = partition_key, clip_id, run_id, step_key

    def begin(self, cache_key: str, resumed_from_step: int = 0) -> SpendAttempt:
        """A new attempt's file; ids sort by start time, so records read back in the order they ran."""
        attempt_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        attempt = SpendAttempt(self.folder / f"{attempt_id}.json", SpendRecord(
            attempt_id, self.run_id, self.step_key, self.partition_key, self.clip_id, cache_key, resumed_from_step))
        attempt.record(0, 0.0)
        return attempt

    def records(self, cache_key: str | None = None) -> list[SpendRecord]:
        return [r for r in read_records(self.folder) if cache_key is None or r.cache_key == cache_key]

    def total(self, cache_key: str) -> float:
        """Every GPU-second any attempt spent on this clip's spec in this shard."""
        return sum(r.gpu_seconds for r in self.records(cache_key))


def shard_folder(work_root: Path, partition_key: str) -> Path:
    return work_root / partition_key / SPEND_FOLDER


def read_records(folder: Path) -> list[SpendRecord]:
    """The records under `folder` (one clip's, or a whole shard's), oldest first; a torn file cannot exist
    (atomic replace) and an unreadable one is skipped rather than guessed at."""
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.rglob("*.json"), key=lambda p: p.name):
        try:
            records.append(SpendRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return records


def billed_seconds(journal_total: float, fallback: float) -> float:
    """The clip's bill: its attempts' sum, or the checkpoint's cumulative figure when that is larger (a
    checkpoint pulled from another machine's mirror, whose attempt journal stayed on that machine)."""
    return max(journal_total, fallback)


def attempt_rows(records: list[SpendRecord], batch_id: str, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`render_attempts` rows: the shard's earlier rows plus its journal's, one per attempt (append-only:
    a re-materialisation whose work area is gone keeps the rows already booked)."""
    rows = {r["attempt_id"]: r for r in previous}
    for record in records:
        rows[record.attempt_id] = {**asdict(record), "batch_id": batch_id,
                                   "updated_at": datetime.fromisoformat(record.updated_at)}
    return [rows[k] for k in sorted(rows)]
