"""The image-to-video model: Wan2.1-I2V layout, same loading path, conditioned and exactly resumable."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sora_assets.core.render.checkpoints import ClipCheckpoints
from sora_assets.core.render.failpoints import ENV_VAR, FailpointError
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.video_model import RenderJob, VideoModelResource, model_fingerprint


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path, tiny_i2v_dir: Path) -> VideoModelResource:
    return VideoModelResource(model_path=str(tiny_model_dir), i2v_model_path=str(tiny_i2v_dir), checkpoint_every=5)


@pytest.fixture(scope="module")
def spec(model: VideoModelResource) -> GenerationSpec:
    profile = model.profile(conditioned=True)
    return GenerationSpec(prompt="a red fox running through a forest", negative_prompt="", model_id=profile.model_id,
                          model_revision=profile.revision, seed=5, steps=12, width=64, height=64, num_frames=9, fps=8,
                          guidance_scale=5.0, scheduler=profile.scheduler, conditioning="image:test")


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_the_tiny_image_model_has_the_wan_i2v_layout(tiny_i2v_dir: Path, model: VideoModelResource) -> None:
    index = json.loads((tiny_i2v_dir / "model_index.json").read_text())
    assert index["_class_name"] == "WanImageToVideoPipeline"
    assert {"image_encoder", "image_processor", "transformer", "vae", "text_encoder"} <= set(index)
    profile = model.profile(conditioned=True)
    assert profile.model_id == "tiny-wan-i2v" and profile.revision == model_fingerprint(tiny_i2v_dir)
    assert type(model.pipeline(conditioned=True)).__name__ == "WanImageToVideoPipeline"
    assert type(model.pipeline()).__name__ == "WanPipeline"


def test_the_first_frame_conditions_the_render(model: VideoModelResource, spec: GenerationSpec) -> None:
    first = model.render(spec, image=_image(1)).frames
    again = model.render(spec, image=_image(1)).frames
    other = model.render(spec, image=_image(2)).frames
    assert first.shape == (9, 64, 64, 3)
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 1e-3


def test_a_conditioned_render_resumes_bit_identically(model: VideoModelResource, spec: GenerationSpec,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uninterrupted = model.render(spec, image=_image(3)).frames
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    monkeypatch.setenv(ENV_VAR, "generate.after_step=7:raise")
    with pytest.raises(FailpointError):
        model.render(spec, "clip", checkpoints, failpoint_dir=tmp_path / "marks", image=_image(3))
    resumed = model.render(spec, "clip", checkpoints, failpoint_dir=tmp_path / "marks", image=_image(3))
    assert resumed.resumed_from_step == 5 and resumed.steps_computed == 7
    assert np.array_equal(resumed.frames, uninterrupted)


def test_a_conditioned_spec_needs_its_image_and_renders_alone(model: VideoModelResource, spec: GenerationSpec) -> None:
    with pytest.raises(ValueError, match="first-frame image"):
        model.render(spec)
    with pytest.raises(ValueError, match="renders alone"):
        model.render_group([RenderJob(spec, "a", image=_image(1)),
                            RenderJob(replace(spec, seed=6), "b", image=_image(1))])


def test_a_real_text_model_is_never_paired_with_the_tiny_image_model(tmp_path: Path) -> None:
    from sora_assets.resources.video_model import model_settings_from_env

    settings = model_settings_from_env({"SORA_ASSETS_MODEL_PATH": str(tmp_path / "Wan2.1-T2V-1.3B")},
                                       tmp_path / "models" / "tiny-wan")
    model = VideoModelResource(**settings)
    with pytest.raises(FileNotFoundError, match="tiny-wan-i2v"):
        model.ensure_model(conditioned=True)
    configured = model_settings_from_env({"SORA_ASSETS_MODEL_PATH": str(tmp_path / "t2v"),
                                          "SORA_ASSETS_I2V_MODEL_PATH": str(tmp_path / "Wan2.1-I2V-14B")},
                                         tmp_path / "models" / "tiny-wan")
    assert configured["i2v_model_path"] == str(tmp_path / "Wan2.1-I2V-14B")
    assert configured["i2v_model_id"] == "wan2.1-i2v-14b" and configured["build_tiny_i2v_if_missing"] is False
