"""Step checkpoints mirrored to an object store (in memory here; S3 in the production tests)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from sora_assets.core.render.checkpoints import ClipCheckpoints, StepCheckpoint, clear_partition


class MemoryBlobs:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data
        self.puts.append(key)

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, keys: Iterable[str]) -> None:
        for key in list(keys):
            self.objects.pop(key, None)


def checkpoint(step: int) -> StepCheckpoint:
    return StepCheckpoint(cache_key="c" * 64, next_step=step, total_steps=20, latents=torch.full((1, 2, 1, 2, 2), 1.0),
                          scheduler_state={"step_index": step}, gpu_seconds=0.5 * step)


def test_saves_upload_tensor_then_sidecar_and_prune_in_the_mirror_too(tmp_path: Path) -> None:
    mirror = MemoryBlobs()
    writer = ClipCheckpoints(tmp_path / "a", "shard", "clip", keep=2, mirror=mirror)
    for step in (5, 10, 15):
        writer.save(checkpoint(step))
    assert mirror.puts[:2] == ["checkpoints/shard/clip/step-00005.pt", "checkpoints/shard/clip/step-00005.json"]
    assert mirror.keys("checkpoints/") == [f"checkpoints/shard/clip/step-000{s}.{ext}"
                                           for s in (10, 15) for ext in ("json", "pt")]


def test_another_machine_resumes_from_the_mirror_and_skips_a_torn_upload(tmp_path: Path) -> None:
    mirror = MemoryBlobs()
    writer = ClipCheckpoints(tmp_path / "a", "shard", "clip", mirror=mirror)
    writer.save(checkpoint(5))
    writer.save(checkpoint(10))
    mirror.objects["checkpoints/shard/clip/step-00010.pt"] = b"torn"  # a corrupt newest tensor
    reader = ClipCheckpoints(tmp_path / "b", "shard", "clip", mirror=mirror)
    resumed = reader.latest("c" * 64, 20)
    assert resumed is not None and resumed.next_step == 5 and resumed.gpu_seconds == 2.5
    assert "checksum" in reader.rejected[0].reason
    clear_partition(tmp_path / "b", "shard", mirror)
    assert mirror.objects == {} and not (tmp_path / "b" / "shard").exists()


def test_without_a_mirror_nothing_changes(tmp_path: Path) -> None:
    local = ClipCheckpoints(tmp_path, "shard", "clip")
    local.save(checkpoint(5))
    assert local.pull() == [] and local.latest("c" * 64, 20).next_step == 5
