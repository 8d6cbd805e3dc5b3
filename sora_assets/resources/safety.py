"""Frame safety scanning: the frame classifiers the policy names (resources/classifiers.py: NudeNet on every
frame, OpenCV's Haar face detector on sampled frames), technical checks on every frame."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.quality.frames import technical_findings
from sora_assets.core.safety.frame_policy import EVERY, FramePolicy, ScanVerdict, judge, names_person, sampled_indices
from sora_assets.core.safety.policy_file import SafetyPolicy, load_policy
from sora_assets.resources.classifiers import FACE_SCAN_MAX_SIDE, classifier, face_boxes, face_detector, nude_detector

__all__ = ["FACE_SCAN_MAX_SIDE", "FrameSafetyResource", "count_faces", "face_detector", "nude_detector"]


def count_faces(frame: np.ndarray) -> int:
    return len(face_boxes(frame))


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
        """`scan` with the sampled-frame classifiers (faces) on the given frames (the benchmark passes every frame).

        Each classifier the policy names runs on every frame or on `sampled`; the findings, normalised, go to
        the policy engine."""
        policy = self.policy()
        every = list(range(len(frames)))
        runs = [(classifier(name), every if frames_of == EVERY else sampled)
                for name, frames_of in policy.classifiers.items()]
        # OpenCV and ONNX Runtime release the GIL: the other classifiers and the technical checks run beside the
        # first (NudeNet, the long one)
        with ThreadPoolExecutor(max_workers=1) as pool:
            side = pool.submit(lambda: ([c.classify(frames, on) for c, on in runs[1:]], technical_findings(frames)))
            first = runs[0][0].classify(frames, runs[0][1]) if runs else []
            rest, technical = side.result()
        findings = [f for found in (first, *rest) for f in found]
        return judge(findings, technical, non_finite or [], len(frames), policy,
                     checked={c.name: len(on) for c, on in runs},
                     prompt_names_person=bool(prompt) and names_person(prompt, self.safety_policy()))

    def scan_image(self, image: np.ndarray, prompt: str = "") -> ScanVerdict:
        """A conditioning image (H, W, 3 uint8 RGB), judged as a one-frame clip before any GPU time."""
        return self.scan(np.asarray(image, dtype=np.uint8)[None], prompt=prompt)
