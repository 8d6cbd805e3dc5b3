"""Frame safety scanning: NudeNet (ONNX weights ship in the wheel) plus technical frame checks."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.frames import technical_findings
from sora_assets.core.safety_policy import FramePolicy, ScanVerdict, judge

_DETECTOR_LOCK = threading.Lock()
_DETECTOR: dict[str, Any] = {}


def nude_detector() -> Any:
    """One NudeNet ONNX session per process."""
    with _DETECTOR_LOCK:
        if "detector" not in _DETECTOR:
            from nudenet import NudeDetector

            _DETECTOR["detector"] = NudeDetector()
        return _DETECTOR["detector"]


class FrameSafetyResource(ConfigurableResource):
    strict_threshold: float = Field(default=0.45, description="Score at which a strict class blocks.")
    sampled_threshold: float = Field(default=0.5)
    sample_stride: int = Field(default=5, description="Sampled classes: every Nth frame plus first/last.")

    def policy(self) -> FramePolicy:
        return FramePolicy(strict_threshold=self.strict_threshold, sampled_threshold=self.sampled_threshold,
                           sample_stride=self.sample_stride)

    def scan(self, frames: np.ndarray, non_finite: list[int] | None = None) -> ScanVerdict:
        """uint8 RGB frames (F, H, W, 3). Strict classes need every frame, so NudeNet sees all of them."""
        detector = nude_detector()
        detections = [detector.detect(np.ascontiguousarray(frame[:, :, ::-1])) for frame in frames]  # RGB→BGR
        return judge(detections, technical_findings(frames), non_finite or [], len(frames), self.policy())
