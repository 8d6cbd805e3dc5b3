"""How close an accelerated render is to the exact one: PSNR and SSIM over a clip (scikit-image metrics)."""

from __future__ import annotations

import math

import numpy as np


def clip_psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR in dB over the whole clip (one MSE over every frame), frames float in [0, 1]; inf when identical."""
    from skimage.metrics import peak_signal_noise_ratio

    reference, candidate = _pair(reference, candidate)
    if np.array_equal(reference, candidate):
        return math.inf
    return float(peak_signal_noise_ratio(reference, candidate, data_range=1.0))


def clip_ssim(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean per-frame SSIM (colour, Gaussian-free 7x7 windows as scikit-image defaults)."""
    from skimage.metrics import structural_similarity

    reference, candidate = _pair(reference, candidate)
    window = min(7, *reference.shape[1:3])
    window -= 1 - window % 2  # odd, and no larger than the frame
    return float(np.mean([structural_similarity(r, c, channel_axis=-1, data_range=1.0, win_size=window)
                          for r, c in zip(reference, candidate, strict=True)]))


def _pair(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape or reference.ndim != 4:
        raise ValueError(f"clips must share one (frames, height, width, 3) shape: {reference.shape} vs "
                         f"{candidate.shape}")
    return reference, candidate
