"""Issue 19 (5): inbox entries are checked before any read and never followed; every entry leaves with a reason."""

import json
import os
import threading
from pathlib import Path

import pytest

from sora_assets.core.intake import inbox as intake
from sora_assets.core.intake.inbox import inbox_candidates, ingest_file
from sora_assets.core.storage.home import Home

CSV = b"prompt,seed\na red fox running through snow,1\n"


def reason_of(home: Home, name: str) -> tuple[Path, dict]:
    [moved] = [p for p in (home.quarantine / "files").iterdir() if p.name.endswith(name)]
    return moved, json.loads(moved.with_name(moved.name + ".reason.json").read_text())


def ingest_with_deadline(home: Home, path: Path, seconds: float = 30.0) -> intake.IngestResult:
    """ingest_file in a thread: a blocking read of a FIFO would hang, so the bound is a liveness check."""
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(result=ingest_file(home, path, 64)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"ingest_file blocked on {path.name}"
    return box["result"]


def test_a_link_to_a_readable_csv_outside_the_home_is_moved_never_read(home: Home, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(CSV)
    link = home.inbox / "batch.csv"
    link.symlink_to(outside)
    assert link in inbox_candidates(home)
    result = ingest_file(home, link, 64)
    assert result.status == "quarantined" and "symbolic link" in (result.reason or "")
    assert not os.path.lexists(link)
    moved, reason = reason_of(home, "batch.csv")
    assert moved.is_symlink() and os.readlink(moved) == str(outside)  # the link itself, still pointing there
    assert "symbolic link" in reason["reason"]
    assert not any(home.batches.iterdir())  # nothing was copied into the home
    assert outside.read_bytes() == CSV


def test_a_fifo_is_quarantined_without_blocking(home: Home) -> None:
    fifo = home.inbox / "pipe.jsonl"
    os.mkfifo(fifo)
    assert fifo in inbox_candidates(home)
    result = ingest_with_deadline(home, fifo)
    assert result.status == "quarantined" and "FIFO" in (result.reason or "")
    moved, _ = reason_of(home, "pipe.jsonl")
    assert not os.path.lexists(fifo) and not moved.is_file()


def test_a_directory_and_a_hard_link_are_quarantined(home: Home, tmp_path: Path) -> None:
    folder = home.inbox / "folder.csv"
    folder.mkdir()
    (folder / "inner.csv").write_bytes(CSV)
    shared = tmp_path / "shared.csv"
    shared.write_bytes(CSV)
    hard = home.inbox / "hard.csv"
    os.link(shared, hard)
    assert {folder, hard} <= set(inbox_candidates(home))
    assert "directory" in (ingest_file(home, folder, 64).reason or "")
    assert "hard link" in (ingest_file(home, hard, 64).reason or "")
    assert not any(home.batches.iterdir()) and not any(home.inbox.iterdir())


def test_a_link_swapped_in_after_the_check_is_refused_by_o_nofollow(home: Home, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_bytes(CSV)
    link = home.inbox / "race.csv"
    link.symlink_to(outside)
    real_lstat = os.lstat
    # the lstat check "saw" a regular file: the entry became a link between check and open
    monkeypatch.setattr(intake.os, "lstat", lambda p: real_lstat(outside) if Path(p) == link else real_lstat(p))
    with pytest.raises(intake.NotARegularFile, match="symbolic link"):
        intake.read_inbox_file(link)


@pytest.mark.parametrize("depth", [50_000, 1_000_000])
def test_a_deeply_nested_json_line_is_a_quarantine_reason_not_an_exception(home: Home, depth: int) -> None:
    source = home.inbox / "deep.jsonl"
    nested = "[" * depth + "]" * depth
    source.write_text(json.dumps({"prompt": "a red fox"}) + "\n" + '{"prompt": "x", "meta": ' + nested + "}\n")
    result = ingest_file(home, source, 64)
    assert result.status == "quarantined" and result.reason
    assert not source.exists()
    _, reason = reason_of(home, "deep.jsonl")
    assert reason["reason"] == result.reason
    assert not any(home.batches.iterdir())  # no half-registered batch left behind
