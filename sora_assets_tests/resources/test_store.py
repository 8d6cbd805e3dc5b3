from pathlib import Path

from sora_assets.core.storage.fsutil import sha256_file
from sora_assets.resources.store import LocalClipStore


def test_publish_is_content_addressed_and_hits_by_cache_key(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"video bytes")
    store = LocalClipStore(root=str(tmp_path / "store"))
    stored = store.publish(clip, "k" * 64, {"clip_id": "c1"})
    sha = sha256_file(clip)
    assert stored.sha256 == sha
    assert stored.path == tmp_path / "store" / sha[:2] / f"{sha}.mp4"
    assert stored.sidecar["clip_id"] == "c1" and stored.sidecar["cache_key"] == "k" * 64
    hit = store.lookup("k" * 64)
    assert hit is not None and hit.sha256 == sha
    assert store.lookup("z" * 64) is None


def test_republishing_the_same_bytes_keeps_one_object(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"same")
    store = LocalClipStore(root=str(tmp_path / "store"))
    store.publish(clip, "1" * 64, {})
    store.publish(clip, "2" * 64, {})
    assert len(list((tmp_path / "store").glob("*/*.mp4"))) == 1


def test_a_corrupted_object_is_a_miss_never_served(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"original bytes")
    store = LocalClipStore(root=str(tmp_path / "store"))
    stored = store.publish(clip, "k" * 64, {})
    stored.path.chmod(0o644)
    stored.path.write_bytes(b"original bytez")
    assert store.lookup("k" * 64) is None
    stored.path.unlink()
    assert store.lookup("k" * 64) is None
