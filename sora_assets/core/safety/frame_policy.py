"""Frame safety policy: frame classifiers (plug-ins, resources/classifiers.py) return normalised findings;
the policy file names each classifier's labels with a threshold, the frames they count on (every frame, or
every Nth plus the first and last) and an action. Technical checks run on every frame."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sora_assets.core.quality.frames import FrameFinding
from sora_assets.core.safety.policy_file import SafetyPolicy, load_policy
from sora_assets.core.safety.prefilter import policy_variants

STRICT_LABELS = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
})
SAMPLED_LABELS = frozenset({"FACE_FEMALE", "FACE_MALE"})
DEFAULT_TECHNICAL = {"non_finite": "block", "black_all_frames": "block", "black_some_frames": "flag",
                     "frozen_all_frames": "flag", "noise_all_frames": "block", "noise_some_frames": "flag"}
EVERY, SAMPLED = "every", "sampled"  # which frames a classifier runs on, or a label is judged on


@dataclass(frozen=True)
class Finding:
    """One frame classifier's finding, normalised: what every classifier plug-in returns."""

    classifier: str  # the plug-in's name in the policy file (nudenet, faces, ...)
    label: str
    score: float
    frame_index: int
    box: tuple[float, float, float, float] | None = None  # x, y, width, height in pixels


@dataclass(frozen=True)
class LabelRule:
    """What a classifier's label does: at or above `threshold`, on every or only on sampled frames."""

    classifier: str
    label: str
    check: str  # the check name its events carry (nudity, face)
    threshold: float
    frames: str = EVERY
    action: str = "block"
    action_when_prompt_names_person: str | None = None  # likeness: another action when the prompt names someone
    per_frame: str = "each"  # each: one event per finding; count: one per frame, scored by how many were found


def _legacy_rules(strict_labels: frozenset[str], strict_threshold: float, class_thresholds: Mapping[str, float],
                  strict_action: str, sampled_threshold: float, face_action_when_named: str) -> tuple[LabelRule, ...]:
    """The rules of the policy format before classifiers were named (frames.strict / frames.sampled)."""
    face = {"check": "face", "frames": SAMPLED, "action": "allow",
            "action_when_prompt_names_person": face_action_when_named}
    return (*(LabelRule("nudenet", label, "nudity", class_thresholds.get(label, strict_threshold),
                        action=strict_action) for label in sorted(strict_labels)),
            *(LabelRule("nudenet", label, threshold=sampled_threshold, **face) for label in sorted(SAMPLED_LABELS)),
            LabelRule("faces", "FACE", threshold=0.0, per_frame="count", **face))


DEFAULT_RULES = _legacy_rules(STRICT_LABELS, 0.45, {}, "block", 0.5, "flag")
DEFAULT_CLASSIFIERS = {"nudenet": EVERY, "faces": SAMPLED}


def _packaged_version() -> str:
    return load_policy().version


@dataclass(frozen=True)
class FramePolicy:
    """Which classifiers run on which frames and what their labels do; technical checks on every frame."""

    sample_stride: int = 5
    version: str = field(default_factory=_packaged_version)
    rules: tuple[LabelRule, ...] = DEFAULT_RULES
    classifiers: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CLASSIFIERS))  # name -> frames
    technical: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TECHNICAL))
    publish_flagged: bool = True

    def rule(self, classifier: str, label: str) -> LabelRule | None:
        return next((r for r in self.rules if (r.classifier, r.label) == (classifier, label)), None)

    @classmethod
    def from_policy(cls, policy: SafetyPolicy) -> FramePolicy:
        frames = policy.frames
        if "classifiers" in frames:
            classifiers, rules = _rules_from(frames["classifiers"])
        else:  # a policy file in the format before classifiers were named
            strict, faces = frames["strict"], frames["sampled"]["faces"]
            classifiers, rules = dict(DEFAULT_CLASSIFIERS), _legacy_rules(
                frozenset(strict["classes"]), float(strict["threshold"]),
                {k: float(v) for k, v in (strict.get("class_thresholds") or {}).items()},
                strict.get("action", "block"), 0.5, faces.get("action_when_prompt_names_person", "flag"))
        return cls(sample_stride=int(frames["sampled"]["stride"]), version=policy.version, rules=rules,
                   classifiers=classifiers, technical={**DEFAULT_TECHNICAL, **frames["technical"]},
                   publish_flagged=bool(frames.get("publish_flagged", True)))


def _rules_from(section: Mapping[str, Any]) -> tuple[dict[str, str], tuple[LabelRule, ...]]:
    """`frames.classifiers`: per classifier the frames it runs on and, per label, its rule."""
    classifiers, rules = {}, []
    for name, spec in section.items():
        classifiers[name] = spec.get("frames", EVERY)
        for label, rule in (spec.get("labels") or {}).items():
            rules.append(LabelRule(name, label, rule["check"], float(rule["threshold"]),
                                   rule.get("frames", classifiers[name]), rule.get("action", "block"),
                                   rule.get("action_when_prompt_names_person"), rule.get("per_frame", "each")))
    return classifiers, tuple(rules)


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


def _action(rule: LabelRule, prompt_names_person: bool) -> tuple[str, str]:
    if rule.action_when_prompt_names_person is None:
        return rule.action, ""
    if prompt_names_person:
        return rule.action_when_prompt_names_person, f"{rule.check} seen; the prompt names a person: likeness review"
    return rule.action, f"{rule.check} seen; likeness review needs a named person"


def judge(findings: Sequence[Finding], technical: Sequence[FrameFinding], non_finite: Sequence[int],
          frame_count: int, policy: FramePolicy, checked: Mapping[str, int] | None = None,
          prompt_names_person: bool = False) -> ScanVerdict:
    """Combine normalised classifier findings, technical findings and non-finite frames into one verdict.

    Each finding is judged by its (classifier, label) rule; labels without a rule are ignored. `checked`:
    how many frames each classifier looked at (the frame count for those on every frame)."""
    checked = dict(checked or {})
    verdict = ScanVerdict(verdict="pass", frames_scanned=frame_count, policy_version=policy.version,
                          faces_checked=sum(n for name, n in checked.items()
                                            if policy.classifiers.get(name) == SAMPLED))
    sampled = set(sampled_indices(frame_count, policy.sample_stride))
    rules = {(r.classifier, r.label): r for r in policy.rules}
    counted: dict[tuple[int, int, str], int] = {}  # (rule position, frame, label) -> findings
    order = {key: i for i, key in enumerate(rules)}
    for finding in findings:
        rule = rules.get((finding.classifier, finding.label))
        if rule is None or finding.score < rule.threshold or (rule.frames == SAMPLED
                                                               and finding.frame_index not in sampled):
            continue
        if rule.per_frame == "count":
            key = (order[(rule.classifier, rule.label)], finding.frame_index, finding.label)
            counted[key] = counted.get(key, 0) + 1
            continue
        action, detail = _action(rule, prompt_names_person)
        verdict.events.append(SafetyEvent(rule.check, finding.frame_index, finding.label, float(finding.score),
                                          action, detail))
    keys = list(rules)
    for (position, index, label), count in sorted(counted.items()):
        action, detail = _action(rules[keys[position]], prompt_names_person)
        verdict.events.append(SafetyEvent(rules[keys[position]].check, index, label, float(count), action, detail))
    for index in non_finite:
        verdict.events.append(SafetyEvent("non_finite", index, None, 1.0, policy.technical["non_finite"]))
    _technical(verdict, technical, frame_count, policy)

    blocks = [e for e in verdict.events if e.action == "block"]
    if blocks:
        verdict.verdict = "block"
        verdict.reasons = sorted({f"{e.check_name}:{e.label or e.detail or 'frame'}" for e in blocks})
    elif any(e.action == "flag" for e in verdict.events):
        verdict.verdict = "flag"
        verdict.reasons = sorted({f"{e.check_name}" for e in verdict.events if e.action == "flag"})
    return verdict
