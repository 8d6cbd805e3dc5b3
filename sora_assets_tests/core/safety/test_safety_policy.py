"""Frame safety policy: strict vs sampled labels, technical findings, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from sora_assets.core.quality.frames import FrameFinding, technical_findings
from sora_assets.core.safety.frame_policy import (
    SAMPLED_LABELS,
    STRICT_LABELS,
    Finding,
    FramePolicy,
    judge,
    sampled_indices,
)
from sora_assets.core.safety.policy_file import load_policy

POLICY = FramePolicy()


@pytest.mark.parametrize(("count", "stride", "expected"), [
    (12, 5, [0, 5, 10, 11]),
    (0, 5, []),
    (1, 5, [0]),
    (5, 5, [0, 4]),
    (6, 5, [0, 5]),
    (3, 1, [0, 1, 2]),
    (9, 100, [0, 8]),
])
def test_sampled_indices(count, stride, expected):
    assert sampled_indices(count, stride) == expected


def _empty(count: int) -> list[Finding]:
    return []


def nudenet(frame: int, label: str, score: float) -> Finding:
    return Finding("nudenet", label, score, frame)


def test_clean_clip_passes():
    verdict = judge(_empty(6), [], [], 6, POLICY)
    assert verdict.verdict == "pass"
    assert verdict.events == [] and verdict.reasons == []
    assert verdict.frames_scanned == 6
    assert verdict.policy_version == load_policy().version


@pytest.mark.parametrize("label", sorted(STRICT_LABELS))
def test_strict_label_above_threshold_blocks_on_any_frame(label):
    detections = [nudenet(3, label, 0.9)]  # frame 3 is not a sampled frame
    verdict = judge(detections, [], [], 12, POLICY)
    assert verdict.verdict == "block"
    assert verdict.reasons == [f"nudity:{label}"]
    (event,) = verdict.events
    assert (event.frame_index, event.label, event.action) == (3, label, "block")


def test_strict_threshold_boundary():
    label = "FEMALE_BREAST_EXPOSED"
    threshold = POLICY.rule("nudenet", label).threshold
    assert threshold == 0.45
    at = judge([nudenet(0, label, threshold)], [], [], 1, POLICY)
    below = judge([nudenet(0, label, threshold - 0.01)], [], [], 1, POLICY)
    assert at.verdict == "block"
    assert below.verdict == "pass" and below.events == []


def test_face_on_non_sampled_frame_is_ignored():
    detections = [nudenet(3, "FACE_FEMALE", 0.99)]
    verdict = judge(detections, [], [], 12, POLICY)
    assert verdict.verdict == "pass"
    assert verdict.events == []


@pytest.mark.parametrize("label", sorted(SAMPLED_LABELS))
def test_face_on_sampled_frame_is_recorded_but_allowed(label):
    detections = [nudenet(5, label, 0.8), nudenet(11, label, 0.2)]  # frame 11: below the sampled threshold
    verdict = judge(detections, [], [], 12, POLICY)
    assert verdict.verdict == "pass"
    assert [(e.check_name, e.frame_index, e.action) for e in verdict.events] == [("face", 5, "allow")]


def test_unknown_and_covered_labels_are_ignored():
    detections = [nudenet(0, "FEMALE_BREAST_COVERED", 0.99), nudenet(0, "BELLY_EXPOSED", 1.0),
                  Finding("other", "FEMALE_BREAST_EXPOSED", 1.0, 0)]  # a label of a classifier the policy lacks
    assert judge(detections, [], [], 1, POLICY).verdict == "pass"


def test_all_black_clip_blocks():
    frames = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    verdict = judge(_empty(5), technical_findings(frames), [], 5, POLICY)
    assert verdict.verdict == "block"
    assert any(r.startswith("black:") for r in verdict.reasons)
    assert any(e.check_name == "black" and e.frame_index is None and e.action == "block"
               for e in verdict.events)


def test_some_black_frames_flag():
    findings = [FrameFinding("black", 0, 1.0), FrameFinding("black", 1, 2.0)]
    verdict = judge(_empty(5), findings, [], 5, POLICY)
    assert verdict.verdict == "flag"
    assert verdict.reasons == ["black"]
    assert sorted(e.frame_index for e in verdict.events) == [0, 1]
    assert all(e.action == "flag" for e in verdict.events)


def test_fully_frozen_clip_flags():
    frames = np.full((4, 8, 8, 3), 120, dtype=np.uint8)
    verdict = judge(_empty(4), technical_findings(frames), [], 4, POLICY)
    assert verdict.verdict == "flag"
    assert verdict.reasons == ["frozen"]


def test_partly_frozen_clip_passes():
    verdict = judge(_empty(4), [FrameFinding("frozen", 2, 0.0)], [], 4, POLICY)
    assert verdict.verdict == "pass"


def test_non_finite_frames_block():
    verdict = judge(_empty(4), [], [2], 4, POLICY)
    assert verdict.verdict == "block"
    assert verdict.reasons == ["non_finite:frame"]
    assert verdict.events[0].frame_index == 2


def test_block_wins_over_flag_and_reasons_are_sorted_unique():
    detections = [nudenet(1, "MALE_GENITALIA_EXPOSED", 0.7), nudenet(2, "MALE_GENITALIA_EXPOSED", 0.8),
                  nudenet(2, "ANUS_EXPOSED", 0.9)]
    verdict = judge(detections, [FrameFinding("black", 4, 3.0)], [], 6, POLICY)
    assert verdict.verdict == "block"
    assert verdict.reasons == ["nudity:ANUS_EXPOSED", "nudity:MALE_GENITALIA_EXPOSED"]
    assert len([e for e in verdict.events if e.action == "block"]) == 3


def test_custom_policy_stride_and_version():
    policy = FramePolicy(sample_stride=2, version="custom-v9")
    detections = [nudenet(2, "FACE_MALE", 0.9)]
    verdict = judge(detections, [], [], 5, policy)
    assert verdict.policy_version == "custom-v9"
    assert [e.frame_index for e in verdict.events] == [2]


def test_haar_faces_count_per_sampled_frame_and_flag_when_the_prompt_names_a_person():
    faces = [Finding("faces", "FACE", 1.0, 5, (1, 1, 30, 30)), Finding("faces", "FACE", 1.0, 5, (40, 1, 30, 30)),
             Finding("faces", "FACE", 1.0, 0), Finding("faces", "FACE", 1.0, 3)]  # frame 3: not sampled
    quiet = judge(faces, [], [], 12, POLICY, checked={"nudenet": 12, "faces": 4})
    assert [(e.check_name, e.frame_index, e.label, e.score, e.action) for e in quiet.events] == [
        ("face", 0, "FACE", 1.0, "allow"), ("face", 5, "FACE", 2.0, "allow")]
    assert quiet.verdict == "pass" and quiet.faces_checked == 4  # frames the sampled classifier looked at
    named = judge(faces, [], [], 12, POLICY, prompt_names_person=True)
    assert named.verdict == "flag" and named.reasons == ["face"]
    assert named.events[0].detail == "face seen; the prompt names a person: likeness review"


def test_the_packaged_policy_names_classifiers_and_its_old_format_means_the_same():
    import dataclasses

    packaged = load_policy()
    policy = FramePolicy.from_policy(packaged)
    assert dict(policy.classifiers) == {"nudenet": "every", "faces": "sampled"}
    assert policy.rule("nudenet", "BUTTOCKS_EXPOSED").threshold == 0.60
    assert policy.rule("nudenet", "ANUS_EXPOSED").threshold == 0.45
    legacy = {"strict": {"classes": sorted(STRICT_LABELS), "threshold": 0.45,
                         "class_thresholds": {"BUTTOCKS_EXPOSED": 0.60}, "action": "block"},
              "sampled": {"stride": 5, "faces": {"detector": "opencv-haar-frontalface",
                                                 "action_when_prompt_names_person": "flag"}},
              "technical": packaged.frames["technical"], "publish_flagged": True}
    old = FramePolicy.from_policy(dataclasses.replace(packaged, frames=legacy))
    assert set(old.rules) == set(policy.rules) and old.sample_stride == policy.sample_stride
