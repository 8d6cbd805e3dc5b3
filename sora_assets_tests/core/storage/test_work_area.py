"""The shard's work area owns its files: a render record counts only over an intact MP4; quarantine copies;
clearing drops the work area and checkpoints."""

from pathlib import Path

from sora_assets.core.storage.fsutil import sha256_bytes
from sora_assets.core.storage.home import Home
from sora_assets.core.storage.work_area import WorkArea


def test_a_finished_render_counts_only_while_its_mp4_is_intact(tmp_path: Path) -> None:
    area = WorkArea(Home.from_env(tmp_path / "home").ensure(), "b-s1")
    mp4 = b"\x00\x00\x00\x18ftypisom" + b"x" * 64
    area.save_render("k1", mp4, {"work_path": str(area.video_path("k1")), "mp4_sha256": sha256_bytes(mp4)})
    assert area.finished_render("k1")["mp4_sha256"] == sha256_bytes(mp4)
    assert area.make_durable() == 2 and area.make_durable() == 0  # the MP4 and its record, synced once
    area.video_path("k1").write_bytes(mp4[:-1])  # torn or altered after the record: render again
    assert area.finished_render("k1") is None
    assert area.finished_render("never-rendered") is None


def test_quarantine_copies_and_clear_drops_the_shard_but_not_the_quarantine(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    area = WorkArea(home, "b-s1")
    area.save_render("k1", b"video", {"work_path": str(area.video_path("k1")), "mp4_sha256": sha256_bytes(b"video")})
    area.spend_journal("c1", "run", "step").begin("k1").record(3, 0.3)
    target = area.quarantine(area.video_path("k1"), "c1", {"reasons": ["test"]})
    assert target.read_bytes() == b"video" and area.video_path("k1").exists()  # copied, not moved
    assert target.with_suffix(".reason.json").exists()
    assert [r.steps_done for r in area.spend_records()] == [3]
    (home.checkpoints / "b-s1" / "c1").mkdir(parents=True)
    area.clear()
    assert not area.folder.exists() and not (home.checkpoints / "b-s1").exists()
    assert target.exists() and area.spend_records() == []
