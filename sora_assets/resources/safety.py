"""Frame safety scanning: NudeNet (ONNX weights ship in the wheel) on every frame for the strict
classes, OpenCV's Haar face detector on sampled frames, technical checks on every frame."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.frames import technical_findings
from sora_assets.core.policy import SafetyPolicy, load_policy
from sora_assets.core.safety_policy import FramePolicy, ScanVerdict, judge, names_person, sampled_indices

_DETECTOR_LOCK = threading.Lock()
_DETECTOR: dict[str, Any] = {}


def nude_detector() -> Any:
    """One NudeNet ONNX session per process."""
    with _DETECTOR_LOCK:
        if "detector" not in _DETECTOR:
            from nudenet import NudeDetector

            _DETECTOR["detector"] = NudeDetector()
        return _DETECTOR["detector"]


def face_detector() -> Any:
    """OpenCV's frontal-face Haar cascade (ships with opencv-python 4.x), one per process."""
    with _DETECTOR_LOCK:
        if "faces" not in _DETECTOR:
            import cv2

            cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
            if cascade.empty():
                raise RuntimeError("OpenCV's haarcascade_frontalface_default.xml did not load")
            _DETECTOR["faces"] = cascade
        return _DETECTOR["faces"]


# frames are shrunk to this long side first: a face that matters for likeness (>= 10% of the frame)
# stays >= 24 px, the cascade's smallest window, and the scan costs ~3x less than at 832 px
FACE_SCAN_MAX_SIDE = 256


def count_faces(frame: np.ndarray) -> int:
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    scale = FACE_SCAN_MAX_SIDE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    side = min(grey.shape)
    found = face_detector().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                             minSize=(max(24, side // 10), max(24, side // 10)))
    return len(found)


class FrameSafetyResource(ConfigurableResource):
    policy_path: str = Field(default="", description="Safety policy YAML; empty = $SORA_ASSETS_SAFETY_POLICY "
                                                     "or the packaged policy.")

    def safety_policy(self) -> SafetyPolicy:
        return load_policy(self.policy_path or None)

    def policy(self) -> FramePolicy:
        return FramePolicy.from_policy(self.safety_policy())

    def scan(self, frames: np.ndarray, non_finite: list[int] | None = None, prompt: str = "") -> ScanVerdict:
        """uint8 RGB frames (F, H, W, 3): NudeNet on every frame, faces on sampled frames only."""
        return self.scan_with_faces_on(frames, sampled_indices(len(frames), self.policy().sample_stride),
                                       non_finite, prompt)

    def scan_with_faces_on(self, frames: np.ndarray, sampled: list[int], non_finite: list[int] | None = None,
                           prompt: str = "") -> ScanVerdict:
        """`scan` with the face detector on the given frames (the benchmark passes every frame)."""
        policy = self.policy()
        detector = nude_detector()
        # OpenCV and ONNX Runtime release the GIL: the face and technical checks run beside NudeNet
        with ThreadPoolExecutor(max_workers=1) as pool:
            side = pool.submit(lambda: ({i: count_faces(frames[i]) for i in sampled}, technical_findings(frames)))
            detections = [detector.detect(np.ascontiguousarray(frame[:, :, ::-1])) for frame in frames]  # RGB→BGR
            faces, findings = side.result()
        return judge(detections, findings, non_finite or [], len(frames), policy, faces=faces,
                     prompt_names_person=bool(prompt) and names_person(prompt, self.safety_policy()))

    def scan_image(self, image: np.ndarray, prompt: str = "") -> ScanVerdict:
        """A conditioning image (H, W, 3 uint8 RGB), judged as a one-frame clip before any GPU time."""
        return self.scan(np.asarray(image, dtype=np.uint8)[None], prompt=prompt)
