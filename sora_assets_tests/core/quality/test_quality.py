"""Each metric against fixtures whose truth is known by construction."""

import numpy as np
import pytest

from sora_assets.core.quality.metrics import clip_quality, temporal_flicker

SIZE = 64


def textured(seed: int = 0) -> np.ndarray:
    """A smooth random texture (Farneback needs structure to track)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (7, 7), 2.0)


def shifting(frames: int, dx: int) -> np.ndarray:
    """The texture moving right by `dx` pixels per frame (wrapping)."""
    base = textured()
    return np.stack([np.roll(base, dx * t, axis=1) for t in range(frames)])


def static(frames: int = 9) -> np.ndarray:
    return np.stack([textured()] * frames)


def test_a_static_clip_has_zero_motion_flicker_and_drift_and_is_all_frozen() -> None:
    metrics = clip_quality(static())
    assert metrics.motion == 0.0 and metrics.dynamic_degree == 0.0 and metrics.warp_error == 0.0
    assert metrics.flicker == 0.0 and metrics.colour_drift == pytest.approx(0.0, abs=1e-9)
    assert metrics.frozen_ratio == 1.0 and metrics.black_ratio == 0.0


def test_motion_follows_the_true_shift() -> None:
    slow, fast = clip_quality(shifting(9, 1)), clip_quality(shifting(9, 3))
    assert slow.motion == pytest.approx(1.0, abs=0.35) and fast.motion == pytest.approx(3.0, abs=0.8)
    assert fast.motion > slow.motion and fast.dynamic_degree == 1.0 and fast.frozen_ratio == 0.0


def test_smooth_motion_warps_well_and_jumbled_frames_do_not() -> None:
    smooth = shifting(9, 2)
    jumbled = np.stack([textured(seed) for seed in range(9)])  # unrelated pictures: nothing to follow
    assert clip_quality(smooth).warp_error < clip_quality(jumbled).warp_error / 3


def test_injected_flicker_raises_the_score_monotonically() -> None:
    base = static().astype(np.int16)
    scores = []
    for amplitude in (0, 5, 10, 20, 40):
        offsets = np.array([amplitude if t % 2 else 0 for t in range(base.shape[0])], dtype=np.int16)
        flickering = np.clip(base + offsets[:, None, None, None], 0, 255).astype(np.uint8)
        scores.append(temporal_flicker(flickering))
    assert scores[0] == 0.0 and all(a < b for a, b in zip(scores, scores[1:], strict=False))


def test_blur_lowers_sharpness() -> None:
    import cv2

    sharp = static()
    blurred = np.stack([cv2.GaussianBlur(f, (9, 9), 3.0) for f in sharp])
    assert clip_quality(blurred).sharpness < clip_quality(sharp).sharpness / 4


def test_exposure_black_frames_and_clipping() -> None:
    clip = static()
    clip[:3] = 0  # three black frames
    metrics = clip_quality(clip)
    assert metrics.black_ratio == pytest.approx(3 / 9)
    assert metrics.clipped_ratio >= 3 / 9 - 1e-9
    bright = np.full((5, SIZE, SIZE, 3), 255, dtype=np.uint8)
    assert clip_quality(bright).exposure == pytest.approx(1.0) and clip_quality(bright).clipped_ratio == 1.0


def test_colour_drift_grows_with_a_colour_shift_over_time() -> None:
    clip = static().astype(np.int16)
    drifting = clip.copy()
    drifting[..., 0] += np.arange(clip.shape[0], dtype=np.int16)[:, None, None] * 10
    assert clip_quality(np.clip(drifting, 0, 255).astype(np.uint8)).colour_drift > 5.0


def test_one_frame_and_bad_input() -> None:
    single = clip_quality(static(1))
    assert single.motion == 0.0 and single.flicker == 0.0 and single.frozen_ratio == 0.0
    with pytest.raises(ValueError, match="uint8 frames"):
        clip_quality(np.zeros((3, 8, 8, 3), dtype=np.float32))
