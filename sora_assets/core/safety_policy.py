"""Frame safety policy: which classes are strict (every frame), which are sampled, what blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sora_assets.core.frames import FrameFinding

POLICY_VERSION = "frame-policy-v1"
STRICT_LABELS = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
})
SAMPLED_LABELS = frozenset({"FACE_FEMALE", "FACE_MALE"})


@dataclass(frozen=True)
class FramePolicy:
    strict_threshold: float = 0.45
    sampled_threshold: float = 0.5
    sample_stride: int = 5
    version: str = POLICY_VERSION


def sampled_indices(frame_count: int, stride: int) -> list[int]:
    """Every `stride`-th frame plus the first and last."""
    if frame_count <= 0:
        return []
    return sorted(set(range(0, frame_count, stride)) | {0, frame_count - 1})


@dataclass
class SafetyEvent:
    check_name: str
    frame_index: int | None
    label: str | None
    score: float
    action: str  # block | flag | allow
    detail: str = ""


@dataclass
class ScanVerdict:
    verdict: str  # pass | flag | block
    reasons: list[str] = field(default_factory=list)
    events: list[SafetyEvent] = field(default_factory=list)
    frames_scanned: int = 0
    policy_version: str = POLICY_VERSION


def judge(detections: Sequence[Sequence[dict]], findings: Sequence[FrameFinding], non_finite: Sequence[int],
          frame_count: int, policy: FramePolicy) -> ScanVerdict:
    """Combine detector output per frame and technical findings into one verdict with events."""
    verdict = ScanVerdict(verdict="pass", frames_scanned=len(detections), policy_version=policy.version)
    sampled = set(sampled_indices(frame_count, policy.sample_stride))
    for index, frame_detections in enumerate(detections):
        for detection in frame_detections:
            label, score = detection["class"], float(detection["score"])
            if label in STRICT_LABELS and score >= policy.strict_threshold:
                verdict.events.append(SafetyEvent("nudity", index, label, score, "block"))
            elif label in SAMPLED_LABELS and index in sampled and score >= policy.sampled_threshold:
                verdict.events.append(SafetyEvent("face", index, label, score, "allow",
                                                  "face seen; likeness review needs a named person"))
    for index in non_finite:
        verdict.events.append(SafetyEvent("non_finite", index, None, 1.0, "block"))
    black = [f for f in findings if f.check == "black"]
    frozen = [f for f in findings if f.check == "frozen"]
    if frame_count and len(black) == frame_count:
        verdict.events.append(SafetyEvent("black", None, None, 1.0, "block", "every frame is black"))
    else:
        verdict.events += [SafetyEvent("black", f.frame_index, None, f.value, "flag") for f in black]
    if frame_count > 1 and len(frozen) == frame_count - 1:
        verdict.events.append(SafetyEvent("frozen", None, None, 1.0, "flag", "no frame changes"))

    blocks = [e for e in verdict.events if e.action == "block"]
    if blocks:
        verdict.verdict = "block"
        verdict.reasons = sorted({f"{e.check_name}:{e.label or e.detail or 'frame'}" for e in blocks})
    elif any(e.action == "flag" for e in verdict.events):
        verdict.verdict = "flag"
        verdict.reasons = sorted({f"{e.check_name}" for e in verdict.events if e.action == "flag"})
    return verdict
