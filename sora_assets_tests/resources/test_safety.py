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


def test_nudenet_on_a_batch_of_frames_finds_what_it_finds_frame_by_frame() -> None:
    """The classifier runs NudeNet on batches of frames; on a real photo with a face it must report exactly the
    detections one call per frame reports."""
    import skimage.data

    from sora_assets.resources.classifiers import NudeNetClassifier, nude_detector

    photo = skimage.data.astronaut()[:, :, :3]
    frames = np.stack([photo, photo[:, ::-1], np.zeros_like(photo)])  # a face, its mirror, black
    findings = NudeNetClassifier().classify(frames, [0, 1, 2])
    one_by_one = [(i, found["class"], found["score"], tuple(found["box"])) for i in range(3)
                  for found in nude_detector().detect(np.ascontiguousarray(frames[i][:, :, ::-1]))]
    assert [(f.frame_index, f.label, f.score, f.box) for f in findings] == [(i, c, s, tuple(map(float, b)))
                                                                      for i, c, s, b in one_by_one]
    assert {f.frame_index for f in findings} >= {0}  # the astronaut's face is found
