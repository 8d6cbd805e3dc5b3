"""Shared fixtures: a fresh home per test, one tiny model per session (built like any home builds it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sora_assets.core.storage.home import Home

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "samples" / "demo_batch.jsonl"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.from_env(tmp_path / "home").ensure()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sora_assets.resources.tiny_wan import build_tiny_wan

    return build_tiny_wan(tmp_path_factory.mktemp("models") / "tiny-wan")


@pytest.fixture(scope="session")
def tiny_i2v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sora_assets.resources.tiny_wan import build_tiny_wan_i2v

    return build_tiny_wan_i2v(tmp_path_factory.mktemp("models") / "tiny-wan-i2v")


@pytest.fixture(scope="session")
def tiny_ltx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sora_assets.resources.models.ltx import build_tiny_ltx

    return build_tiny_ltx(tmp_path_factory.mktemp("models") / "tiny-ltx")


@pytest.fixture
def home_with_model(home: Home, tiny_model_dir: Path, tiny_i2v_dir: Path) -> Home:
    """A home whose model folders are copies of the session's tiny models (saves a build per test)."""
    shutil.copytree(tiny_model_dir, home.default_model_path)
    shutil.copytree(tiny_i2v_dir, home.default_model_path.parent / tiny_i2v_dir.name)
    return home


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP folder (transformers layout) for the optional alignment score."""
    from sora_assets.resources.alignment import build_tiny_clip
    from sora_assets.resources.tiny_wan import _tokenizer

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", _tokenizer())


@pytest.fixture(scope="session")
def poisoned_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with one NaN in the transformer's output bias: every render goes NaN at step 1."""
    import torch
    from diffusers import WanTransformer3DModel

    from sora_assets.resources.tiny_wan import SHARD_BYTES

    target = tmp_path_factory.mktemp("poisoned") / "tiny-wan"
    shutil.copytree(tiny_model_dir, target)
    transformer = WanTransformer3DModel.from_pretrained(target / "transformer", local_files_only=True)
    with torch.no_grad():
        transformer.proj_out.bias[0] = float("nan")
    transformer.save_pretrained(target / "transformer", max_shard_size=SHARD_BYTES)
    return target


def gradient_clip(frames: int = 9, size: int = 64) -> np.ndarray:
    """A smooth moving gradient: not black, not frozen, compresses well."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    clip = [np.stack([(xs + 4 * t) % size, ys, np.full_like(xs, 128)], axis=-1) * (255 / size)
            for t in range(frames)]
    return np.clip(np.stack(clip), 0, 255).astype(np.uint8)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SORA_ASSETS_HOME": str(tmp_path / "cli-home")}


def mp4_box(data: bytes, box_type: str) -> tuple[int, int]:
    """(offset, size) of the first top-level ISO-BMFF box of `box_type` (e.g. "mdat": the video data)."""
    import struct

    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind.decode("latin-1") == box_type:
            return offset, size
        if size < 8:
            break
        offset += size
    raise KeyError(box_type)


def flip_byte_in(data: bytes, box_type: str) -> bytes:
    offset, size = mp4_box(data, box_type)
    flipped = bytearray(data)
    flipped[offset + 8 + (size - 8) // 2] ^= 0x01
    return bytes(flipped)


HARBOUR_AND_LIGHTHOUSE = ('{"prompt": "a quiet harbour at dawn", "steps": 3}\n'
                          '{"prompt": "a lighthouse in fog", "steps": 3}\n')


def registered_batch(home: Home, name: str, text: str = HARBOUR_AND_LIGHTHOUSE):
    """Submit a batch file and register it as the sensor would: (instance, shard keys)."""
    from sora_assets.core.intake.batch_files import batch_id_for
    from sora_assets.services.runner import batch_shard_keys, open_instance, submit_file, tick_inbox

    batch = home.root.parent / name
    batch.write_text(text)
    submit_file(home, batch)
    instance = open_instance(home)
    tick_inbox(home, instance)
    return instance, batch_shard_keys(home, batch_id_for(batch.name, batch.read_bytes()))
