"""Model-free quality metrics of a clip: uint8 RGB frames (F, H, W, 3) in, one number per metric out.

Definitions follow VBench's model-free dimensions where one exists (temporal flickering: mean
absolute difference of consecutive frames), with OpenCV doing the image work: Farneback optical
flow for motion, flow warping for smoothness, the Laplacian for sharpness.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sora_assets.core.quality.frames import BLACK_LUMA, FROZEN_DIFF, luma

DYNAMIC_PIXELS = 1.0  # mean flow (pixels per frame) above which a frame pair counts as moving
CLIPPED_LOW, CLIPPED_HIGH = 5, 250  # luma values counted as crushed blacks / blown highlights


@dataclass(frozen=True)
class QualityMetrics:
    flicker: float  # mean |frame_t - frame_t-1| / 255, 0 = steady
    motion: float  # mean optical-flow magnitude, pixels per frame
    dynamic_degree: float  # share of frame pairs whose mean flow exceeds DYNAMIC_PIXELS
    warp_error: float  # mean |warp(frame_t, flow) - frame_t+1| / 255: low = smooth, predictable motion
    sharpness: float  # mean variance of the Laplacian of the luma
    exposure: float  # mean luma / 255
    clipped_ratio: float  # share of pixels crushed to black or blown to white
    black_ratio: float  # share of frames that are black
    frozen_ratio: float  # share of frame pairs that are the same picture
    colour_drift: float  # std over frames of the per-frame mean colour (0-255), mean over channels

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _gray(frames: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])


def temporal_flicker(frames: np.ndarray) -> float:
    if frames.shape[0] < 2:
        return 0.0
    return float(np.abs(np.diff(frames.astype(np.int16), axis=0)).mean() / 255.0)


def optical_flows(gray: np.ndarray) -> list[np.ndarray]:
    """Farneback flow per consecutive pair; identical frames get exactly zero flow (Farneback's own
    estimate there is ~0.003 px of numerical noise, and a static clip must score zero motion)."""
    import cv2

    flows = []
    for i in range(gray.shape[0] - 1):
        if np.array_equal(gray[i], gray[i + 1]):
            flows.append(np.zeros((*gray.shape[1:], 2), dtype=np.float32))
        else:
            flows.append(cv2.calcOpticalFlowFarneback(gray[i], gray[i + 1], None, pyr_scale=0.5, levels=3,
                                                      winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0))
    return flows


def warp_error(gray: np.ndarray, flows: list[np.ndarray]) -> float:
    """How well frame t+1 is predicted by moving frame t's pixels along the flow (backward warp)."""
    import cv2

    if not flows:
        return 0.0
    height, width = gray.shape[1:]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    errors = []
    for i, flow in enumerate(flows):
        # flow maps t -> t+1; sample frame t at (x - flow) to predict frame t+1
        predicted = cv2.remap(gray[i], grid_x - flow[..., 0], grid_y - flow[..., 1], cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        errors.append(np.abs(predicted.astype(np.float32) - gray[i + 1].astype(np.float32)).mean())
    return float(np.mean(errors) / 255.0)


def sharpness(gray: np.ndarray) -> float:
    import cv2

    return float(np.mean([cv2.Laplacian(frame, cv2.CV_64F).var() for frame in gray]))


def clip_quality(frames: np.ndarray) -> QualityMetrics:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    gray = _gray(frames)
    flows = optical_flows(gray)
    magnitudes = [float(np.linalg.norm(flow, axis=-1).mean()) for flow in flows]
    pair_diffs = (np.abs(np.diff(frames.astype(np.int16), axis=0)).reshape(frames.shape[0] - 1, -1).mean(axis=1)
                  if frames.shape[0] > 1 else np.zeros(0))
    per_frame_colour = frames.reshape(frames.shape[0], -1, 3).mean(axis=1)
    frame_luma = luma(frames)
    return QualityMetrics(
        flicker=temporal_flicker(frames),
        motion=float(np.mean(magnitudes)) if magnitudes else 0.0,
        dynamic_degree=float(np.mean([m > DYNAMIC_PIXELS for m in magnitudes])) if magnitudes else 0.0,
        warp_error=warp_error(gray, flows),
        sharpness=sharpness(gray),
        exposure=float(frame_luma.mean() / 255.0),
        clipped_ratio=float(((gray <= CLIPPED_LOW) | (gray >= CLIPPED_HIGH)).mean()),
        black_ratio=float((frame_luma < BLACK_LUMA).mean()),
        frozen_ratio=float((pair_diffs < FROZEN_DIFF).mean()) if pair_diffs.size else 0.0,
        colour_drift=float(per_frame_colour.std(axis=0).mean()),
    )
