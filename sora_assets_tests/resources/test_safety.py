import numpy as np

from sora_assets.resources.safety import FrameSafetyResource
from sora_assets_tests.conftest import gradient_clip


def test_a_moving_clean_clip_passes() -> None:
    verdict = FrameSafetyResource().scan(gradient_clip())
    assert verdict.verdict == "pass", verdict.reasons
    assert verdict.frames_scanned == 9


def test_an_all_black_clip_is_blocked() -> None:
    verdict = FrameSafetyResource().scan(np.zeros((9, 64, 64, 3), np.uint8))
    assert verdict.verdict == "block"
    assert any(reason.startswith("black") for reason in verdict.reasons)


def test_non_finite_frames_reported_by_the_renderer_block_the_clip() -> None:
    verdict = FrameSafetyResource().scan(gradient_clip(), non_finite=[3])
    assert verdict.verdict == "block"
    assert [e.frame_index for e in verdict.events if e.check_name == "non_finite"] == [3]
