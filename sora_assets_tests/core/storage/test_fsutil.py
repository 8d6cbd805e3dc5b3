"""Crash-safe writes and hashing."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sora_assets.core.storage import fsutil
from sora_assets.core.storage.fsutil import (
    atomic_copy,
    atomic_write_bytes,
    atomic_write_json,
    sha256_bytes,
    sha256_file,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_creates_parents_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "clip.bin"
    result = atomic_write_bytes(target, b"hello")
    assert result == target
    assert target.read_bytes() == b"hello"
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip.bin"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o444])
def test_atomic_write_sets_mode(tmp_path, mode):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"x", mode=mode)
    assert _mode(target) == mode


def test_atomic_write_replaces_existing_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_bytes(b"old contents that are longer")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_failed_replace_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_json(tmp_path):
    target = tmp_path / "doc.json"
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    atomic_write_json(target, {"b": 1, "a": [1, 2], "when": when, "path": Path("/x/y")}, mode=0o640)
    text = target.read_text()
    assert json.loads(text) == {"a": [1, 2], "b": 1, "when": str(when), "path": "/x/y"}
    assert text.index('"a"') < text.index('"b"')  # sorted keys
    assert "\n  " in text  # indented
    assert _mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_atomic_copy(tmp_path):
    source = tmp_path / "src.bin"
    payload = os.urandom(3 * (1 << 20) + 17)  # crosses the 1 MiB copy chunk
    source.write_bytes(payload)
    target = tmp_path / "out" / "dst.bin"
    assert atomic_copy(source, target, mode=0o600) == target
    assert target.read_bytes() == payload
    assert _mode(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["dst.bin"]
    assert source.read_bytes() == payload


def test_atomic_copy_missing_source_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "dst.bin"
    with pytest.raises(FileNotFoundError):
        atomic_copy(tmp_path / "missing.bin", target)
    assert list(target.parent.iterdir()) == []


def test_hashes_match_hashlib(tmp_path):
    payload = os.urandom(2 * (1 << 20) + 5)
    path = tmp_path / "blob"
    path.write_bytes(payload)
    expected = hashlib.sha256(payload).hexdigest()
    assert sha256_bytes(payload) == expected
    assert sha256_file(path) == expected
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_stale_temp_files_are_swept_and_live_ones_kept(tmp_path):
    import os
    import time

    from sora_assets.core.storage.fsutil import sweep_stale_temps

    stale = tmp_path / "ab" / ".abc.mp4.x1y2.tmp"
    live = tmp_path / "ab" / ".def.mp4.z3w4.tmp"
    real = tmp_path / "ab" / "abc.mp4"
    for path in (stale, live, real):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    os.utime(real, (old, old))
    assert sweep_stale_temps(tmp_path, older_than_s=3600) == [stale]
    assert live.exists() and real.exists() and not stale.exists()
    assert sweep_stale_temps(tmp_path / "absent") == []


def test_sweeps_run_at_most_once_per_interval(tmp_path):
    import os
    import time

    from sora_assets.core.storage.fsutil import sweep_if_due

    marker, store = tmp_path / "work" / ".last-temp-sweep", tmp_path / "store"
    stale = store / "ab" / ".x.mp4.1.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert sweep_if_due(marker, [store]) == [stale] and marker.exists()
    stale.write_bytes(b"x")
    os.utime(stale, (old, old))
    assert sweep_if_due(marker, [store]) == [] and stale.exists()  # swept recently: not walked again
