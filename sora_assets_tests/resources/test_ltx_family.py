"""LTX-Video as the second model family: the tiny offline model, rendering through the shared loop,
first-frame conditioning with shared weights, and bit-exact resume from its (packed) latents."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sora_assets.core.quality.frames import frames_sha256
from sora_assets.core.render.checkpoints import ClipCheckpoints
from sora_assets.core.render.failpoints import ENV_VAR, FailpointError
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources import video_model
from sora_assets.resources.models import get_family
from sora_assets.resources.video_model import ModelMissingError, RenderJob, VideoModelResource
from sora_assets_tests.conftest import gradient_clip


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path, tiny_ltx_dir: Path) -> VideoModelResource:
    return VideoModelResource(model_path=str(tiny_model_dir), ltx_model_path=str(tiny_ltx_dir), checkpoint_every=2)


def ltx_spec(model: VideoModelResource, **changes) -> GenerationSpec:
    profile = model.profile(family="ltx")
    fields = dict(prompt="a red fox running through a forest", negative_prompt="", model_id=profile.model_id,
                  model_revision=profile.revision, seed=5, steps=6, width=64, height=64, num_frames=9, fps=8,
                  guidance_scale=3.0, scheduler=profile.scheduler, model_family="ltx")
    fields.update(changes)
    return GenerationSpec(**fields)


def test_the_profile_carries_the_ltx_grid_and_the_tiny_model_its_layout(model: VideoModelResource,
                                                                        tiny_ltx_dir: Path) -> None:
    profile = model.profile(family="ltx")
    assert (profile.family, profile.size_multiple, profile.frame_step) == ("ltx", 32, 8)
    assert profile.model_id == "tiny-ltx" and profile.scheduler == "FlowMatchEulerDiscreteScheduler"
    assert model.profile().family == "wan" and model.profile().size_multiple == 16
    index = (tiny_ltx_dir / "model_index.json").read_text()
    assert '"LTXPipeline"' in index and '"AutoencoderKLLTXVideo"' in index


def test_an_ltx_clip_resumes_bit_identically_after_a_failure_mid_render(
        model: VideoModelResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ltx_spec(model)
    uninterrupted = model.render(spec)
    assert uninterrupted.frames.shape == (9, 64, 64, 3) and np.isfinite(uninterrupted.frames).all()
    assert type(model.pipeline(family="ltx")).__name__ == "LTXPipeline"
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    monkeypatch.setenv(ENV_VAR, "generate.after_step=5:raise")
    with pytest.raises(FailpointError):
        model.render(spec, "clip", checkpoints, failpoint_dir=tmp_path / "marks")
    monkeypatch.delenv(ENV_VAR)
    saved = checkpoints.latest(spec.cache_key(), spec.steps)
    assert saved is not None and saved.next_step == 4 and saved.latents.ndim == 3  # packed (batch, tokens, ch)
    resumed = model.render(spec, "clip", checkpoints)
    assert resumed.resumed_from_step == 4 and resumed.steps_computed == 2
    assert frames_sha256(resumed.frames) == frames_sha256(uninterrupted.frames)
    # the family keys the clip: the same fields under Wan are another clip
    assert spec.cache_key() != replace(spec, model_family="wan").cache_key()


KILL_SCRIPT = """
import json, sys
from pathlib import Path
from sora_assets.core.render.checkpoints import ClipCheckpoints
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.video_model import VideoModelResource
args = json.loads(sys.argv[1])
model = VideoModelResource(model_path=args["wan"], ltx_model_path=args["ltx"], checkpoint_every=2)
spec = GenerationSpec.from_dict(args["spec"])
model.render(spec, "clip", ClipCheckpoints(Path(args["root"]), "shard", "clip"), failpoint_dir=Path(args["marks"]))
print("finished")
"""


def test_an_ltx_render_sigkilled_mid_way_resumes_bit_identically_in_another_process(
        model: VideoModelResource, tmp_path: Path) -> None:
    spec = ltx_spec(model, steps=8)
    uninterrupted = model.render(spec)
    args = {"wan": model.model_path, "ltx": model.ltx_model_path, "spec": spec.to_dict(),
            "root": str(tmp_path / "ck"), "marks": str(tmp_path / "marks")}
    env = {**os.environ, ENV_VAR: "generate.after_step=5:kill"}
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(args)], env=env,
                            capture_output=True, text=True, timeout=180)
    assert killed.returncode == -9 and "finished" not in killed.stdout, killed.stderr[-2000:]
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    assert checkpoints.steps_saved()[-1] == 4  # every 2 steps: the kill after step 5 lost one step
    resumed = model.render(spec, "clip", checkpoints)
    assert (resumed.resumed_from_step, resumed.steps_computed) == (4, 4)
    assert np.array_equal(resumed.frames, uninterrupted.frames)


def test_a_batch_of_ltx_clips_checkpoints_each_members_own_slice(model: VideoModelResource, tmp_path: Path) -> None:
    specs = [ltx_spec(model, seed=seed, steps=4) for seed in (1, 2)]
    jobs = [RenderJob(s, f"clip{i}", ClipCheckpoints(tmp_path / "ck", "shard", f"clip{i}")) for i, s in
            enumerate(specs)]
    group = model.render_group(jobs)
    assert [r.batch_size for r in group] == [2, 2]
    saved = [ClipCheckpoints(tmp_path / "ck", "shard", f"clip{i}").latest(s.cache_key(), 4)
             for i, s in enumerate(specs)]
    assert all(c is not None and c.latents.shape[0] == 1 for c in saved)
    assert not torch.equal(saved[0].latents, saved[1].latents)


def test_a_first_frame_clip_uses_the_image_pipeline_made_from_the_loaded_text_one(model: VideoModelResource) -> None:
    text = model.pipeline(family="ltx")
    loads = video_model.LOAD_COUNT["loads"]
    spec = ltx_spec(model, steps=2, conditioning="image:" + "ab" * 32)
    result = model.render_group([RenderJob(spec, "clip", image=gradient_clip(1)[0])])[0]
    image_pipe = model.pipeline(conditioned=True, family="ltx")
    assert type(image_pipe).__name__ == "LTXImageToVideoPipeline"
    assert image_pipe.transformer is text.transformer  # from_pipe: the weights are shared, not loaded again
    assert video_model.LOAD_COUNT["loads"] == loads
    assert result.frames.shape == (9, 64, 64, 3) and np.isfinite(result.frames).all()


def test_a_real_wan_deployment_never_pairs_with_the_tiny_random_ltx(tiny_model_dir: Path, tmp_path: Path) -> None:
    real = VideoModelResource(model_path=str(tiny_model_dir), model_id="wan2.1-t2v-1.3b",
                              ltx_model_path=str(tmp_path / "tiny-ltx"))
    with pytest.raises(ModelMissingError, match="configure ltx_model_path"):
        real.profile(family="ltx")
    assert not (tmp_path / "tiny-ltx").exists()


def test_the_family_plugins_name_their_pipelines_and_call_arguments() -> None:
    ltx, wan = get_family("ltx"), get_family(None)
    assert (ltx.pipeline_class(False).__name__, ltx.pipeline_class(True).__name__) == (
        "LTXPipeline", "LTXImageToVideoPipeline")
    assert (wan.pipeline_class(False).__name__, wan.pipeline_class(True).__name__) == (
        "WanPipeline", "WanImageToVideoPipeline")
    spec = GenerationSpec("p", "", "tiny-ltx", "r", 1, 2, 64, 64, 9, 24, 3.0, "s", model_family="ltx")
    assert ltx.call_kwargs(spec) == {"frame_rate": 24} and wan.call_kwargs(spec) == {}
