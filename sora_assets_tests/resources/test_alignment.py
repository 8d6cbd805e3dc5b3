from pathlib import Path

import numpy as np

from sora_assets.resources.alignment import ClipAlignmentResource
from sora_assets_tests.conftest import gradient_clip


def test_disabled_without_a_folder() -> None:
    assert ClipAlignmentResource().score("a cat", gradient_clip()) is None


def test_a_local_clip_folder_scores_prompt_frame_alignment(tiny_clip_dir: Path) -> None:
    model = ClipAlignmentResource(model_path=str(tiny_clip_dir))
    clip = gradient_clip()
    first = model.score("a red fox running through a forest", clip)
    assert first is not None and 0.0 <= first <= 100.0
    assert model.score("a red fox running through a forest", clip) == first  # deterministic
    other = model.score("a chef cooking in a busy kitchen", np.ascontiguousarray(clip[:, ::-1]))
    assert other != first  # the score depends on both the prompt and the frames
