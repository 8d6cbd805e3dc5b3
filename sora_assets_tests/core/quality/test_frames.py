"""Frame arithmetic and technical checks."""

from __future__ import annotations

import numpy as np
import pytest

from sora_assets.core.quality.frames import (
    BLACK_LUMA,
    luma,
    non_finite_frames,
    technical_findings,
    to_uint8,
)


def _gradient_clip(frames: int = 6, height: int = 32, width: int = 48) -> np.ndarray:
    """A horizontal gradient that slides 4 pixels a frame: never black, never frozen."""
    y, x = np.mgrid[0:height, 0:width]
    clip = [np.stack([(x * 4 + i * 16) % 256, (y * 6) % 256, np.full_like(x, 128)], axis=-1)
            for i in range(frames)]
    return np.stack(clip).astype(np.uint8)


def test_to_uint8_maps_nan_to_zero_and_clips():
    frames = np.array([[[[np.nan, 0.0, 1.0], [-0.5, 2.0, 0.5]]]], dtype=np.float32)
    out = to_uint8(frames)
    assert out.dtype == np.uint8
    assert out.shape == frames.shape
    assert out.ravel().tolist() == [0, 0, 255, 0, 255, 128]  # 0.5 * 255 = 127.5 rounds to 128


def test_to_uint8_infinities():
    out = to_uint8(np.array([np.inf, -np.inf], dtype=np.float64).reshape(1, 1, 2, 1))
    assert out.ravel().tolist() == [255, 0]


def test_to_uint8_rounds_to_nearest():
    values = np.arange(256, dtype=np.float64) / 255.0
    out = to_uint8(values.reshape(1, 1, 256, 1))
    assert out.ravel().tolist() == list(range(256))


def test_to_uint8_passes_uint8_through_unchanged():
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    assert to_uint8(frames) is frames


def test_non_finite_frames_finds_the_bad_frame():
    frames = np.full((5, 4, 4, 3), 0.5, dtype=np.float32)
    frames[2, 1, 3, 0] = np.nan
    frames[4, 0, 0, 2] = -np.inf
    assert non_finite_frames(frames) == [2, 4]
    assert non_finite_frames(np.full((3, 2, 2, 3), 0.5)) == []


def test_non_finite_frames_ignores_integer_frames():
    assert non_finite_frames(np.zeros((3, 2, 2, 3), dtype=np.uint8)) == []


def test_luma_weights():
    frames = np.zeros((3, 2, 2, 3), dtype=np.uint8)
    frames[0, ..., 0] = 255  # pure red
    frames[1, ..., 1] = 255  # pure green
    frames[2] = 255  # white
    values = luma(frames)
    assert values.shape == (3,)
    assert values[0] == pytest.approx(0.299 * 255, abs=0.01)
    assert values[1] == pytest.approx(0.587 * 255, abs=0.01)
    assert values[2] == pytest.approx(255, abs=0.01)


def test_all_black_clip_is_black_and_frozen_everywhere():
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    findings = technical_findings(frames)
    assert sorted(f.frame_index for f in findings if f.check == "black") == [0, 1, 2, 3]
    assert sorted(f.frame_index for f in findings if f.check == "frozen") == [1, 2, 3]


def test_near_black_threshold():
    dark = np.full((1, 4, 4, 3), int(BLACK_LUMA) - 1, dtype=np.uint8)
    lit = np.full((1, 4, 4, 3), int(BLACK_LUMA) + 1, dtype=np.uint8)
    assert [f.check for f in technical_findings(dark)] == ["black"]
    assert technical_findings(lit) == []


def test_frozen_frames_detected():
    clip = _gradient_clip(frames=5)
    clip[3] = clip[2]  # one repeated picture
    findings = technical_findings(clip)
    assert [(f.check, f.frame_index) for f in findings] == [("frozen", 3)]
    assert findings[0].value == 0.0


def test_moving_gradient_has_no_findings():
    clip = _gradient_clip()
    assert technical_findings(clip) == []


def test_single_frame_has_no_frozen_check():
    clip = _gradient_clip(frames=1)
    assert technical_findings(clip) == []


def test_frozen_difference_is_signed_not_wrapped():
    # five pixels one luma step darker: true mean luma difference 5/64; uint8 wrap-around would make it ~20
    clip = np.full((2, 8, 8, 3), 100, dtype=np.uint8)
    clip[1, 0, :5, :] = 99
    findings = technical_findings(clip)
    assert [(f.check, f.frame_index) for f in findings] == [("frozen", 1)]
    assert findings[0].value == pytest.approx(5 / 64)
