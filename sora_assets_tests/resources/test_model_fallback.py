"""Issue 19 (4): the tiny random model stands in only when no model is configured at all."""

import json
import shutil
from pathlib import Path

import pytest

from sora_assets.core.render.failures import ModelLoadError, classify
from sora_assets.resources.video_model import ModelMissingError, VideoModelResource, model_settings_from_env


def test_a_mistyped_path_in_code_fails_instead_of_building_noise_under_a_real_name(tmp_path: Path) -> None:
    typo = tmp_path / "models" / "Wan2.1-T2V-1.3B-Diffusres"
    model = VideoModelResource(model_path=str(typo), model_id="wan2.1-t2v-1.3b")
    with pytest.raises(ModelMissingError) as caught:
        model.profile()
    message = str(caught.value)
    assert "\n" not in message and str(typo) in message and "model_index.json missing" in message
    assert not typo.exists()  # nothing was built there
    assert classify(caught.value).reason == "model_unavailable" and not classify(caught.value).retryable


def test_a_configured_path_with_the_tiny_id_is_not_built_either(tmp_path: Path) -> None:
    elsewhere = tmp_path / "my-model"
    with pytest.raises(ModelMissingError, match="default folder"):
        VideoModelResource(model_path=str(elsewhere)).ensure_model()
    assert not elsewhere.exists()


def test_a_partial_folder_is_never_built_over(tmp_path: Path) -> None:
    partial = tmp_path / "models" / "tiny-wan"
    (partial / "transformer").mkdir(parents=True)
    with pytest.raises(ModelMissingError, match="incomplete"):
        VideoModelResource(model_path=str(partial)).ensure_model()
    assert not (partial / "model_index.json").exists()


@pytest.mark.parametrize("via", ["code", "environment"])
def test_an_incomplete_model_fails_with_one_line_whichever_way_it_was_configured(
        tmp_path: Path, tiny_model_dir: Path, via: str) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "Wan2.1-T2V-1.3B")
    shutil.rmtree(folder / "vae")
    settings = (model_settings_from_env({"SORA_ASSETS_MODEL_PATH": str(folder)}, tmp_path / "models" / "tiny-wan")
                if via == "environment" else {"model_path": str(folder), "model_id": "wan2.1-t2v-1.3b"})
    model = VideoModelResource(**settings)
    with pytest.raises(ModelLoadError) as caught:
        model.profile()
    assert "missing component 'vae'" in str(caught.value) and "\n" not in str(caught.value)


def test_a_real_text_model_in_code_is_not_paired_with_a_tiny_image_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    real = shutil.copytree(tiny_model_dir, tmp_path / "Wan2.1-T2V-1.3B")
    model = VideoModelResource(model_path=str(real), model_id="wan2.1-t2v-1.3b")
    with pytest.raises(ModelMissingError, match="i2v_model_path"):
        model.ensure_model(conditioned=True)
    assert not (tmp_path / "tiny-wan-i2v").exists()


def test_no_model_configured_builds_the_tiny_model_in_the_home(tmp_path: Path) -> None:
    default = tmp_path / "models" / "tiny-wan"
    model = VideoModelResource(**model_settings_from_env({}, default))
    assert model.ensure_model() == default
    assert json.loads((default / "model_index.json").read_text())["_class_name"] == "WanPipeline"
    assert model.profile().model_id == "tiny-wan"
