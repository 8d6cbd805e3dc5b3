import numpy as np
import pytest

from sora_assets.core.quality.previews import contact_sheet, sample_indices
from sora_assets_tests.conftest import gradient_clip


def decode(png: bytes) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_sample_indices_include_first_and_last() -> None:
    assert sample_indices(9, 4) == [0, 3, 5, 8] and sample_indices(3, 4) == [0, 1, 2]


def test_one_row_per_clip_and_blocked_clips_show_no_pixels() -> None:
    clip = gradient_clip(frames=9, size=64)
    png = contact_sheet([("shard-r00001", clip), ("shard-r00002", None)], samples=4, tile=32)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    sheet = decode(png)
    assert sheet.shape == (64, 32 * 3 + 4 * 32, 3)
    expected = clip[0].astype(np.float32).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))  # first frame, 2x2 averaged
    assert np.abs(sheet[:32, 96:128].astype(np.float32) - expected).max() <= 1.0
    blocked = sheet[32:, 96:]
    assert set(np.unique(blocked)) <= {96, 255}  # grey tiles and the cross, nothing of the clip


def test_an_empty_sheet_is_an_error() -> None:
    with pytest.raises(ValueError):
        contact_sheet([])


def test_a_jpeg_sheet_for_embedding_is_smaller_and_keeps_the_layout() -> None:
    rng = np.random.default_rng(0)
    clips = [(f"shard-r{i:05d}", rng.integers(0, 255, (9, 64, 64, 3), dtype=np.uint8)) for i in range(4)]
    png = contact_sheet(clips, tile=48)
    jpeg = contact_sheet(clips, tile=48, image_format="jpeg", label_width=176)
    assert jpeg[:3] == b"\xff\xd8\xff" and len(jpeg) < len(png) / 2  # noise: JPEG is far smaller
    assert decode(jpeg).shape == (4 * 48, 176 + 4 * 48, 3)
    with pytest.raises(ValueError):
        contact_sheet(clips, image_format="gif")
