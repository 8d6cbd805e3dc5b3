import json
from pathlib import Path

import numpy as np
import pytest

from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources import video_model
from sora_assets.resources.tiny_wan import build_tiny_wan
from sora_assets.resources.video_model import VideoModelResource, model_fingerprint

WAN_LAYOUT = {"model_index.json", "scheduler", "text_encoder", "tokenizer", "transformer", "vae"}


def spec_for(resource: VideoModelResource, **changes) -> GenerationSpec:
    profile = resource.profile()
    fields = dict(prompt="a red fox running through a forest", negative_prompt="", model_id=profile.model_id,
                  model_revision=profile.revision, seed=11, steps=4, width=64, height=64, num_frames=9, fps=8,
                  guidance_scale=5.0, scheduler=profile.scheduler)
    fields.update(changes)
    return GenerationSpec(**fields)


def test_tiny_model_is_saved_in_the_wan_diffusers_layout(tiny_model_dir: Path) -> None:
    assert {p.name for p in tiny_model_dir.iterdir()} >= WAN_LAYOUT
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    assert index["scheduler"][1] == "UniPCMultistepScheduler"
    assert list((tiny_model_dir / "transformer").glob("*.safetensors"))


def test_two_homes_build_identical_models_and_render_identical_frames(tmp_path: Path, tiny_model_dir: Path) -> None:
    other = build_tiny_wan(tmp_path / "second" / "tiny-wan")
    assert model_fingerprint(other) == model_fingerprint(tiny_model_dir)
    first = VideoModelResource(model_path=str(tiny_model_dir))
    second = VideoModelResource(model_path=str(other))
    a = first.render(spec_for(first)).frames
    b = second.render(spec_for(second)).frames
    assert a.shape == (9, 64, 64, 3)
    assert np.array_equal(a, b)


def test_render_is_deterministic_per_seed_and_differs_across_seeds(tiny_model_dir: Path) -> None:
    model = VideoModelResource(model_path=str(tiny_model_dir))
    first = model.render(spec_for(model, seed=3))
    again = model.render(spec_for(model, seed=3))
    other = model.render(spec_for(model, seed=4))
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)
    assert first.steps_run == 4 and len(first.step_seconds) == 4
    assert first.gpu_seconds > 0 and np.isfinite(first.frames).all()


def test_model_is_loaded_once_per_process_for_many_renders(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    path = shutil.copytree(tiny_model_dir, tmp_path / "fresh-path")
    model = VideoModelResource(model_path=str(path))
    before = video_model.LOAD_COUNT["loads"]
    for seed in range(3):
        model.render(spec_for(model, seed=seed, steps=2))
    assert video_model.LOAD_COUNT["loads"] == before + 1


def test_missing_model_folder_is_an_error_when_building_is_disabled(tmp_path: Path) -> None:
    model = VideoModelResource(model_path=str(tmp_path / "absent"), build_tiny_if_missing=False)
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        model.profile()


def test_fingerprint_changes_when_weights_change(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    weights = next((copy / "vae").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny_model_dir)


def test_model_settings_come_from_the_environment_with_tiny_defaults(tmp_path: Path) -> None:
    from sora_assets.resources.video_model import model_settings_from_env

    tiny = tmp_path / "models" / "tiny-wan"
    assert model_settings_from_env({}, tiny) == {"model_path": str(tiny),
                                                 "i2v_model_path": str(tiny.parent / "tiny-wan-i2v"),
                                                 "ltx_model_path": str(tiny.parent / "tiny-ltx")}
    real = model_settings_from_env({
        "SORA_ASSETS_MODEL_PATH": "/models/Wan2.1-T2V-1.3B-Diffusers", "SORA_ASSETS_DTYPE": "bfloat16",
        "SORA_ASSETS_DEVICE": "cuda:1", "SORA_ASSETS_CPU_OFFLOAD": "yes", "SORA_ASSETS_RENDER_BATCH_SIZE": "2",
        "SORA_ASSETS_DEFAULT_SHAPE": "832x480x81@16"}, tiny)
    model = VideoModelResource(**real)
    assert model.model_id == "wan2.1-t2v-1.3b-diffusers" and not model.build_tiny_if_missing
    assert not model.build_tiny_ltx_if_missing  # a real Wan is never paired with the tiny random LTX
    assert (model.dtype, model.device, model.cpu_offload, model.batch_size) == ("bfloat16", "cuda:1", True, 2)
    assert (model.default_width, model.default_height, model.default_num_frames, model.default_fps) == (832, 480, 81,
                                                                                                        16)
    ltx = VideoModelResource(**model_settings_from_env({"SORA_ASSETS_LTX_MODEL_PATH": "/models/LTX-Video",
                                                        "SORA_ASSETS_MODEL_FAMILY": "LTX-Video"}, tiny))
    assert (ltx.model_family, ltx.ltx_model_id, ltx.build_tiny_ltx_if_missing) == ("ltx", "ltx-video", False)
    with pytest.raises(KeyError, match="unknown model family"):
        model_settings_from_env({"SORA_ASSETS_MODEL_FAMILY": "sora"}, tiny)
    with pytest.raises(ValueError, match="WIDTHxHEIGHTxFRAMES@FPS"):
        model_settings_from_env({"SORA_ASSETS_DEFAULT_SHAPE": "832x480"}, tiny)
    with pytest.raises(ValueError, match="whole number"):
        model_settings_from_env({"SORA_ASSETS_CHECKPOINT_EVERY": "ten"}, tiny)
