"""A shard's work area and quarantine: the only code that writes, copies or removes their files.

`work/<shard>/` holds what a shard's attempts leave for the next one: encoded renders with their
`.render.json` record (written last: it marks the render done), the spend journal (`core/render/spend.py`)
and signed copies. A render and its record are written without fsync (atomic rename only) and made durable
together by `make_durable` once per step, before the step's output names them (one journal commit for the
shard instead of four fsyncs per clip: ~6-9 ms each on a loaded VM). A power cut before that can tear them;
that is safe because the record carries the MP4's SHA-256 and `finished_render` reuses a render only over
an intact file (a torn one is rendered again, never published).
`checkpoints/<shard>/` holds step checkpoints, `quarantine/<shard>/` blocked clips.
The assets ask this object for every file effect instead of moving and removing files themselves.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sora_assets.core.render.checkpoints import ClipCheckpoints, clear_partition
from sora_assets.core.render.spend import SpendJournal, SpendRecord, read_records, shard_folder
from sora_assets.core.storage.blobs import BlobStore
from sora_assets.core.storage.fsutil import (
    atomic_copy,
    atomic_write_bytes,
    atomic_write_json,
    sha256_file,
    sweep_if_due,
)
from sora_assets.core.storage.home import Home


class WorkArea:
    """The files of one shard (`key`) under a home."""

    def __init__(self, home: Home, key: str, mirror: BlobStore | None = None):
        self.home, self.key, self.mirror = home, key, mirror
        self.folder = home.work / key
        self.deferred: list[Path] = []  # written without fsync since the last `make_durable`

    def video_path(self, cache_key: str) -> Path:
        return self.folder / f"{cache_key}.mp4"

    def finished_render(self, cache_key: str) -> dict[str, Any] | None:
        """A render an earlier attempt completed: its record, if the MP4 it describes is intact."""
        record_path = self.folder / f"{cache_key}.render.json"
        if not record_path.exists():
            return None
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            return None  # unreadable: render again rather than trust it
        video = Path(record.get("work_path", ""))
        if not video.exists() or sha256_file(video) != record.get("mp4_sha256"):
            return None
        return record

    def save_render(self, cache_key: str, mp4: bytes, record: dict[str, Any]) -> None:
        """The MP4 first, then its record: a record only ever describes a whole file."""
        video = atomic_write_bytes(self.video_path(cache_key), mp4, durable=False)
        self.deferred += [video, atomic_write_json(self.folder / f"{cache_key}.render.json", record, durable=False)]

    def make_durable(self) -> int:
        """fsync every file written without it since the last call, then their folders: on ext4 the first
        fsync commits the others' data with it, so the rest are nearly free. Returns the files synced."""
        paths, self.deferred = list(dict.fromkeys(self.deferred)), []
        for path in [*paths, *dict.fromkeys(p.parent for p in paths)]:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # replaced or cleared since: nothing of it left to lose
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(paths)

    def checkpoints(self, clip_id: str, keep: int) -> ClipCheckpoints:
        return ClipCheckpoints(self.home.checkpoints, self.key, clip_id, keep, mirror=self.mirror)

    def spend_journal(self, clip_id: str, run_id: str, step_key: str) -> SpendJournal:
        return SpendJournal(self.home.work, self.key, clip_id, run_id, step_key, deferred=self.deferred)

    def spend_records(self) -> list[SpendRecord]:
        return read_records(shard_folder(self.home.work, self.key))

    def quarantine(self, work_path: Path, clip_id: str, reason: dict[str, Any]) -> Path:
        """Copy (not move) a blocked clip into quarantine with its reason: the work file stays until the shard
        is cleared, so a re-execution of the scan before its rows are written scans the same file again."""
        target = atomic_copy(work_path, self.home.quarantine / self.key / f"{clip_id}.mp4")
        atomic_write_json(target.with_suffix(".reason.json"), reason)
        return target

    def save_preview(self, png: bytes) -> Path:
        return atomic_write_bytes(self.home.previews / f"{self.key}.png", png)

    def clear(self) -> list[Path]:
        """Once every clip is published, blocked or dead-lettered: drop the work area and checkpoints (local
        and mirrored), and now and then stale temp files killed writers left; returns those swept."""
        shutil.rmtree(self.folder, ignore_errors=True)
        clear_partition(self.home.checkpoints, self.key, self.mirror)
        return sweep_if_due(self.home.work / ".last-temp-sweep", [self.home.store, self.home.warehouse])
