"""Frame safety policy: strict classes on every frame, sampled classes (faces) on every Nth frame plus
the first and last, technical checks on every frame; actions from the policy file."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sora_assets.core.frames import FrameFinding
from sora_assets.core.policy import SafetyPolicy, load_policy
from sora_assets.core.prefilter import policy_variants

STRICT_LABELS = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
})
SAMPLED_LABELS = frozenset({"FACE_FEMALE", "FACE_MALE"})
DEFAULT_TECHNICAL = {"non_finite": "block", "black_all_frames": "block", "black_some_frames": "flag",
                     "frozen_all_frames": "flag", "noise_all_frames": "block", "noise_some_frames": "flag"}


def _packaged_version() -> str:
    return load_policy().version


@dataclass(frozen=True)
class FramePolicy:
    strict_threshold: float = 0.45
    sampled_threshold: float = 0.5
    sample_stride: int = 5
    version: str = field(default_factory=_packaged_version)
    strict_labels: frozenset[str] = STRICT_LABELS
    class_thresholds: Mapping[str, float] = field(default_factory=dict)  # per-class overrides of strict_threshold
    strict_action: str = "block"
    face_action_when_named: str = "flag"  # likeness review when the prompt names a person
    technical: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TECHNICAL))
    publish_flagged: bool = True

    @classmethod
    def from_policy(cls, policy: SafetyPolicy) -> FramePolicy:
        frames = policy.frames
        return cls(strict_threshold=float(frames["strict"]["threshold"]),
                   sample_stride=int(frames["sampled"]["stride"]), version=policy.version,
                   strict_labels=frozenset(frames["strict"]["classes"]),
                   class_thresholds={k: float(v) for k, v in (frames["strict"].get("class_thresholds") or {}).items()},
                   strict_action=frames["strict"].get("action", "block"),
                   face_action_when_named=frames["sampled"]["faces"].get("action_when_prompt_names_person", "flag"),
                   technical={**DEFAULT_TECHNICAL, **frames["technical"]},
                   publish_flagged=bool(frames.get("publish_flagged", True)))


def sampled_indices(frame_count: int, stride: int) -> list[int]:
    """Every `stride`-th frame plus the first and last."""
    if frame_count <= 0:
        return []
    return sorted(set(range(0, frame_count, stride)) | {0, frame_count - 1})


_CAPITALISED_PAIR = re.compile(r"\b([A-Z][a-z]+)\s+([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")


def names_person(prompt: str, policy: SafetyPolicy) -> bool:
    """Does the prompt name a person? A public figure from the policy, or a given name from its list
    followed by a capitalised surname ("Maria Lopez walking"). A heuristic, not named-entity recognition."""
    if any(policy.terms["public_figures"].search(v) for v in policy_variants(prompt, policy.lexicon)):
        return True
    given = {n.lower() for n in policy.raw_terms.get("given_names", ())}
    return any(first.lower() in given for first, _ in _CAPITALISED_PAIR.findall(prompt))


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
    policy_version: str = ""
    faces_checked: int = 0  # frames the sampled face detector looked at


def _technical(verdict: ScanVerdict, findings: Sequence[FrameFinding], frame_count: int, policy: FramePolicy) -> None:
    actions = policy.technical
    for check in ("black", "noise"):
        hits = [f for f in findings if f.check == check]
        if frame_count and len(hits) == frame_count:
            verdict.events.append(SafetyEvent(check, None, None, 1.0, actions[f"{check}_all_frames"],
                                              f"every frame is {check}"))
        else:
            verdict.events += [SafetyEvent(check, f.frame_index, None, f.value, actions[f"{check}_some_frames"])
                               for f in hits]
    frozen = [f for f in findings if f.check == "frozen"]
    if frame_count > 1 and len(frozen) == frame_count - 1:
        verdict.events.append(SafetyEvent("frozen", None, None, 1.0, actions["frozen_all_frames"], "no frame changes"))


def judge(detections: Sequence[Sequence[dict]], findings: Sequence[FrameFinding], non_finite: Sequence[int],
          frame_count: int, policy: FramePolicy, faces: Mapping[int, int] | None = None,
          prompt_names_person: bool = False) -> ScanVerdict:
    """Combine detector output per frame, sampled face counts and technical findings into one verdict.

    `detections`: NudeNet output per frame (strict classes judged on every frame; its FACE_* classes
    only on sampled frames). `faces`: face count per sampled frame from the face detector.
    """
    verdict = ScanVerdict(verdict="pass", frames_scanned=len(detections), policy_version=policy.version)
    sampled = set(sampled_indices(frame_count, policy.sample_stride))
    face_action = policy.face_action_when_named if prompt_names_person else "allow"
    face_detail = "face seen; the prompt names a person: likeness review" if prompt_names_person else \
        "face seen; likeness review needs a named person"
    for index, frame_detections in enumerate(detections):
        for detection in frame_detections:
            label, score = detection["class"], float(detection["score"])
            if label in policy.strict_labels and score >= policy.class_thresholds.get(label, policy.strict_threshold):
                verdict.events.append(SafetyEvent("nudity", index, label, score, policy.strict_action))
            elif label in SAMPLED_LABELS and index in sampled and score >= policy.sampled_threshold:
                verdict.events.append(SafetyEvent("face", index, label, score, face_action, face_detail))
    for index, count in sorted((faces or {}).items()):
        verdict.faces_checked += 1
        if count and index in sampled:
            verdict.events.append(SafetyEvent("face", index, "FACE", float(count), face_action, face_detail))
    for index in non_finite:
        verdict.events.append(SafetyEvent("non_finite", index, None, 1.0, policy.technical["non_finite"]))
    _technical(verdict, findings, frame_count, policy)

    blocks = [e for e in verdict.events if e.action == "block"]
    if blocks:
        verdict.verdict = "block"
        verdict.reasons = sorted({f"{e.check_name}:{e.label or e.detail or 'frame'}" for e in blocks})
    elif any(e.action == "flag" for e in verdict.events):
        verdict.verdict = "flag"
        verdict.reasons = sorted({f"{e.check_name}" for e in verdict.events if e.action == "flag"})
    return verdict
