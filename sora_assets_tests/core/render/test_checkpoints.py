import json
from pathlib import Path

import pytest
import torch

from sora_assets.core.render.checkpoints import ClipCheckpoints, StepCheckpoint, clear_partition

KEY = "c" * 64


def checkpoint(step: int, total: int = 50, key: str = KEY, value: float | None = None) -> StepCheckpoint:
    latents = torch.full((1, 16, 3, 8, 8), float(step) if value is None else value)
    state = {"model_outputs": [latents.clone(), None], "lower_order_nums": 2, "_step_index": step,
             "timesteps": torch.arange(total, dtype=torch.float32)}
    return StepCheckpoint(cache_key=key, next_step=step, total_steps=total, latents=latents,
                          scheduler_state=state, generator_state=torch.Generator().manual_seed(1).get_state(),
                          gpu_seconds=0.5 * step, step_seconds=[0.5] * step)


@pytest.fixture
def store(tmp_path: Path) -> ClipCheckpoints:
    return ClipCheckpoints(tmp_path / "checkpoints", "batch-s000", "batch-r00001", keep=2)


def test_round_trip_restores_tensors_state_and_cost(store: ClipCheckpoints) -> None:
    store.save(checkpoint(10))
    loaded = store.latest(KEY, 50)
    assert loaded is not None and loaded.next_step == 10
    assert torch.equal(loaded.latents, checkpoint(10).latents)
    assert loaded.scheduler_state["lower_order_nums"] == 2 and loaded.scheduler_state["model_outputs"][1] is None
    assert torch.equal(loaded.generator_state, checkpoint(10).generator_state)
    assert loaded.gpu_seconds == 5.0 and len(loaded.step_seconds) == 10
    assert store.folder == store.folder.parent.parent / "batch-s000" / "batch-r00001"


def test_keeps_the_newest_two(store: ClipCheckpoints) -> None:
    for step in (10, 20, 30, 40):
        store.save(checkpoint(step))
    assert store.steps_saved() == [30, 40]
    assert store.latest(KEY, 50).next_step == 40


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_tensor", "garbage_sidecar"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(store: ClipCheckpoints, damage: str) -> None:
    store.save(checkpoint(10))
    store.save(checkpoint(20))
    newest = store.folder / "step-00020.pt"
    if damage == "flip":
        data = bytearray(newest.read_bytes())
        data[len(data) // 2] ^= 0x40
        newest.write_bytes(bytes(data))
    elif damage == "truncate":
        newest.write_bytes(newest.read_bytes()[:100])
    elif damage == "delete_tensor":
        newest.unlink()
    else:
        (store.folder / "step-00020.json").write_text("{not json")
    loaded = store.latest(KEY, 50)
    assert loaded is not None and loaded.next_step == 10
    assert [a.path.name for a in store.rejected] == ["step-00020.json"]


def test_a_tensor_file_without_its_sidecar_is_a_torn_write_and_never_counts(store: ClipCheckpoints) -> None:
    store.save(checkpoint(10))
    torch.save({"latents": torch.zeros(1)}, store.folder / "step-00020.pt")
    assert store.latest(KEY, 50).next_step == 10


def test_a_checkpoint_of_another_spec_or_step_count_is_ignored(store: ClipCheckpoints) -> None:
    store.save(checkpoint(10, key="d" * 64))
    assert store.latest(KEY, 50) is None and "different generation spec" in store.rejected[0].reason
    store.clear()
    store.save(checkpoint(10, total=30))
    assert store.latest(KEY, 50) is None and "30 steps" in store.rejected[0].reason


def test_non_finite_latents_are_never_resumed(store: ClipCheckpoints) -> None:
    store.save(checkpoint(10))
    store.save(checkpoint(20, value=float("nan")))
    assert store.latest(KEY, 50).next_step == 10
    assert "not finite" in store.rejected[0].reason


def test_a_sidecar_pointing_at_a_pickle_is_refused_by_weights_only_loading(store: ClipCheckpoints) -> None:
    """A checkpoint is data: torch.load(weights_only=True) refuses arbitrary objects even with a valid hash."""
    import hashlib

    store.folder.mkdir(parents=True)
    evil = store.folder / "step-00010.pt"
    torch.save({"payload": Path("/")}, evil)
    (store.folder / "step-00010.json").write_text(json.dumps({
        "format": 1, "file": evil.name, "sha256": hashlib.sha256(evil.read_bytes()).hexdigest(),
        "cache_key": KEY, "next_step": 10, "total_steps": 50}))
    assert store.latest(KEY, 50) is None
    assert "Unpickling" in store.rejected[0].reason or "weights_only" in store.rejected[0].reason


def test_clear_partition_removes_every_clip(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    for clip in ("a", "b"):
        ClipCheckpoints(root, "shard", clip).save(checkpoint(10))
    clear_partition(root, "shard")
    assert not (root / "shard").exists()
