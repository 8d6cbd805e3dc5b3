"""Per-attempt GPU spend of a clip: an append-only journal, so no GPU-second is lost to a crash.

A clip may be denoised by several attempts: a step retry, a re-execution, a backfill, an OOM split that
re-renders a group's clips one by one. A step checkpoint only knows the seconds spent on steps 1..k; what
a killed attempt spent after its last checkpoint (or before its first) used to vanish from the books.

Each attempt owns one small JSON file, `<work>/<shard>/spend/<clip>/<attempt>.json`, written when it
begins and replaced atomically and durably once it finishes. In between, every denoising step appends one
line (`steps seconds unix_time`) to `<attempt>.steps` beside it: one `write` of ~40 bytes (a few µs), where
replacing the JSON each step cost ~0.5 ms (temp file + rename), ~10% of a tiny model's step. The append is
unbuffered, so a SIGKILL loses at most the step in flight; a power cut can lose the newest lines (not
fsynced), and a torn last line is ignored. Reading an unfinished attempt takes its newest whole line. The
clip's bill is the sum of its attempts (`SpendJournal.total`), and `published_clips` keeps every record in
the `render_attempts` table: ledger GPU-seconds = sum of attempts.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sora_assets.core.storage.fsutil import atomic_write_json

SPEND_FOLDER = "spend"
STEPS_SUFFIX = ".steps"  # an unfinished attempt's per-step lines, beside its JSON


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

    def __init__(self, path: Path, record: SpendRecord, deferred: list[Path] | None = None):
        """With `deferred`, the final record is written without fsync and its path appended there: the owner
        (the shard's work area) makes every file of the step durable at once before the step's output."""
        self.path, self.record_, self.deferred = path, record, deferred
        self.steps_path = path.with_suffix(STEPS_SUFFIX)

    def record(self, steps_done: int, gpu_seconds: float, finished: bool = False) -> None:
        """A step's running total is one appended line; the first and the final record replace the JSON."""
        now = time.time()
        self.record_.steps_done, self.record_.gpu_seconds, self.record_.finished = steps_done, gpu_seconds, finished
        self.record_.updated_at = datetime.fromtimestamp(now, UTC).isoformat()
        if finished or steps_done == 0:
            atomic_write_json(self.path, asdict(self.record_), durable=finished and self.deferred is None)
            if finished:  # the JSON now holds the totals: the lines are redundant
                if self.deferred is not None:
                    self.deferred.append(self.path)
                self.steps_path.unlink(missing_ok=True)
            return
        # O_APPEND, unbuffered: the line is in the page cache (SIGKILL-proof) when write returns
        fd = os.open(self.steps_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{steps_done} {gpu_seconds!r} {now!r}\n".encode())
        finally:
            os.close(fd)


class SpendJournal:
    """The spend records of one clip in one shard, written by the attempts that render it."""

    def __init__(self, work_root: Path, partition_key: str, clip_id: str, run_id: str = "", step_key: str = "",
                 deferred: list[Path] | None = None):
        self.folder = shard_folder(work_root, partition_key) / clip_id
        self.partition_key, self.clip_id, self.run_id, self.step_key = partition_key, clip_id, run_id, step_key
        self.deferred = deferred  # see SpendAttempt

    def begin(self, cache_key: str, resumed_from_step: int = 0) -> SpendAttempt:
        """A new attempt's file; ids sort by start time, so records read back in the order they ran."""
        attempt_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        attempt = SpendAttempt(self.folder / f"{attempt_id}.json", SpendRecord(
            attempt_id, self.run_id, self.step_key, self.partition_key, self.clip_id, cache_key, resumed_from_step),
            self.deferred)
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
    """The records under `folder` (one clip's, or a whole shard's), oldest first; a torn JSON cannot exist
    (atomic replace) and an unreadable one is skipped rather than guessed at. An unfinished attempt's
    figures are its newest whole step line, when it has one."""
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.rglob("*.json"), key=lambda p: p.name):
        try:
            record = SpendRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if not record.finished:
            _apply_newest_step(record, path.with_suffix(STEPS_SUFFIX))
        records.append(record)
    return records


def _apply_newest_step(record: SpendRecord, steps_path: Path) -> None:
    """Overlay the newest complete `steps seconds unix_time` line (a torn last line has no newline)."""
    try:
        lines = steps_path.read_bytes().split(b"\n")[:-1]  # the part after the last newline is incomplete
    except OSError:
        return
    for line in reversed(lines):
        try:
            steps, seconds, at = line.split()
            record.steps_done, record.gpu_seconds = int(steps), float(seconds)
            record.updated_at = datetime.fromtimestamp(float(at), UTC).isoformat()
            return
        except ValueError:
            continue


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
