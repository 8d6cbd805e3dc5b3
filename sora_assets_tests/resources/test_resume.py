"""Exact resume from step checkpoints, NaN abort, render groups, and real-layout loading."""

import json
import os
import shutil
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
from sora_assets.core.render.failures import ModelLoadError
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.video_model import NonFiniteLatentsError, RenderJob, VideoModelResource
from sora_assets_tests.resources.test_video_model import spec_for

KILL_SCRIPT = """
import json, sys
from pathlib import Path
from sora_assets.core.render.checkpoints import ClipCheckpoints
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.video_model import VideoModelResource
args = json.loads(sys.argv[1])
model = VideoModelResource(model_path=args["model"], checkpoint_every=args["every"])
spec = GenerationSpec.from_dict(args["spec"])
model.render(spec, "clip", ClipCheckpoints(Path(args["root"]), "shard", "clip"), failpoint_dir=Path(args["marks"]))
print("finished")
"""


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> VideoModelResource:
    return VideoModelResource(model_path=str(tiny_model_dir), checkpoint_every=5)


@pytest.fixture(scope="module")
def spec(model: VideoModelResource) -> GenerationSpec:
    return spec_for(model, steps=20, seed=1234)


@pytest.fixture(scope="module")
def uninterrupted(model: VideoModelResource, spec: GenerationSpec) -> np.ndarray:
    return model.render(spec).frames


def fail_after(model: VideoModelResource, spec: GenerationSpec, step: int, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> ClipCheckpoints:
    """Render until a `raise` failpoint stops it after `step`; the failpoint is disarmed afterwards."""
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    monkeypatch.setenv(ENV_VAR, f"generate.after_step={step}:raise")
    with pytest.raises(FailpointError):
        model.render(spec, "clip", checkpoints, failpoint_dir=tmp_path / "marks")
    monkeypatch.delenv(ENV_VAR)
    return checkpoints


@pytest.mark.parametrize("kill_after", [7, 15, 19])
def test_resume_after_a_real_sigkill_is_bit_identical(model: VideoModelResource, spec: GenerationSpec,
                                                      uninterrupted: np.ndarray, tmp_path: Path,
                                                      kill_after: int) -> None:
    args = {"model": model.model_path, "every": 5, "spec": spec.to_dict(), "root": str(tmp_path / "ck"),
            "marks": str(tmp_path / "marks")}
    env = {**os.environ, ENV_VAR: f"generate.after_step={kill_after}:kill"}
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(args)], env=env,
                            capture_output=True, text=True, timeout=180)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert "finished" not in killed.stdout
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    newest = kill_after // 5 * 5
    assert checkpoints.steps_saved()[-1] == newest

    resumed = model.render(spec, "clip", checkpoints)
    assert resumed.resumed_from_step == newest
    assert resumed.steps_computed == spec.steps - newest and resumed.steps_run == spec.steps
    assert frames_sha256(resumed.frames) == frames_sha256(uninterrupted)
    assert np.array_equal(resumed.frames, uninterrupted)


def test_a_raised_step_resumes_in_process_and_carries_the_gpu_time_spent(
        model: VideoModelResource, spec: GenerationSpec, uninterrupted: np.ndarray, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    monkeypatch.setenv(ENV_VAR, "generate.after_step=12:raise")
    with pytest.raises(FailpointError):
        model.render(spec, "clip", checkpoints, failpoint_dir=tmp_path / "marks")
    resumed = model.render(spec, "clip", checkpoints, failpoint_dir=tmp_path / "marks")  # fired once: passes
    assert resumed.resumed_from_step == 10 and resumed.steps_computed == 10
    assert resumed.prior_gpu_seconds > 0 and resumed.total_gpu_seconds > resumed.gpu_seconds
    assert np.array_equal(resumed.frames, uninterrupted)


def test_a_corrupt_newest_checkpoint_falls_back_and_still_resumes_exactly(
        model: VideoModelResource, spec: GenerationSpec, uninterrupted: np.ndarray, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoints = fail_after(model, spec, 16, tmp_path, monkeypatch)
    newest = checkpoints.folder / "step-00015.pt"
    data = bytearray(newest.read_bytes())
    data[-20] ^= 0xFF
    newest.write_bytes(bytes(data))
    resumed = model.render(spec, "clip", checkpoints)
    assert resumed.resumed_from_step == 10
    assert np.array_equal(resumed.frames, uninterrupted)


def test_checkpoints_of_a_different_spec_are_not_used(model: VideoModelResource, spec: GenerationSpec,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoints = fail_after(model, spec, 11, tmp_path, monkeypatch)
    other = replace(spec, seed=spec.seed + 1)
    fresh = model.render(other, "clip", checkpoints)
    assert fresh.resumed_from_step == 0 and fresh.steps_computed == other.steps
    assert np.array_equal(fresh.frames, model.render(other).frames)


def test_without_checkpointing_the_same_failure_reruns_every_step(tiny_model_dir: Path, spec: GenerationSpec,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model = VideoModelResource(model_path=str(tiny_model_dir), checkpoint_every=0)
    checkpoints = fail_after(model, spec, 18, tmp_path, monkeypatch)
    assert checkpoints.steps_saved() == []
    assert model.render(spec, "clip", checkpoints).steps_computed == spec.steps


def test_the_step_budget_is_the_number_of_steps_run(model: VideoModelResource) -> None:
    for steps in (3, 7):
        result = model.render(spec_for(model, steps=steps))
        assert result.steps_run == steps and result.steps_computed == steps == len(result.step_seconds)
        assert all(s > 0 for s in result.step_seconds) and result.decode_seconds > 0


def test_tier_budgets_are_resource_config(tiny_model_dir: Path) -> None:
    policy = VideoModelResource(model_path=str(tiny_model_dir), free_tier_steps=12, paid_tier_steps=40,
                                free_tier_max_short_side=360).tier_policy()
    assert policy.steps == {"free": 12, "paid": 40} and policy.max_short_side == {"free": 360}



def test_non_finite_latents_stop_the_clip_at_the_first_bad_step(poisoned_model_dir: Path, tmp_path: Path) -> None:
    model = VideoModelResource(model_path=str(poisoned_model_dir), checkpoint_every=1)
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    seen: list[int] = []
    with pytest.raises(NonFiniteLatentsError) as caught:
        model.render(spec_for(model, steps=20), "clip", checkpoints, progress=lambda e: seen.append(e.step))
    assert caught.value.step == 1 and caught.value.clip_ids == ["clip"]
    assert seen == [] and checkpoints.steps_saved() == []  # nothing after the bad step, no NaN checkpoint
    assert caught.value.gpu_seconds > 0


BATCH_TOLERANCE = 1e-5  # documented in docs/GENERATION.md: batched vs unbatched frames, values in [0, 1]


def test_a_batched_render_matches_unbatched_within_the_documented_tolerance(model: VideoModelResource,
                                                                            tmp_path: Path) -> None:
    specs = [spec_for(model, steps=10, seed=seed, prompt=prompt) for seed, prompt in
             [(1, "a chef cooking in a busy kitchen"), (2, "timelapse of clouds over a desert"),
              (3, "a red fox running through a forest")]]
    singles = [model.render(s).frames for s in specs]
    jobs = [RenderJob(s, f"clip{i}", ClipCheckpoints(tmp_path / "ck", "shard", f"clip{i}")) for i, s in
            enumerate(specs)]
    group = model.render_group(jobs)
    assert [r.batch_size for r in group] == [3, 3, 3]
    for single, batched in zip(singles, group, strict=True):
        assert np.abs(single - batched.frames).max() <= BATCH_TOLERANCE
    # each member's checkpoint is its own slice: it resumes alone, within the same tolerance
    member = ClipCheckpoints(tmp_path / "ck", "shard", "clip1")
    saved = member.latest(specs[1].cache_key(), 10)
    assert saved is not None and saved.latents.shape[0] == 1 and saved.next_step == 5
    resumed = model.render(specs[1], "clip1", member)
    assert resumed.resumed_from_step == 5
    assert np.abs(resumed.frames - singles[1]).max() <= BATCH_TOLERANCE


def test_a_group_needs_one_shape(model: VideoModelResource) -> None:
    with pytest.raises(ValueError, match="one shape"):
        model.render_group([RenderJob(spec_for(model, steps=4)), RenderJob(spec_for(model, steps=5))])


REAL_WAN_INDEX = {  # model_index.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers
    "_class_name": "WanPipeline", "_diffusers_version": "0.33.0.dev0",
    "scheduler": ["diffusers", "UniPCMultistepScheduler"], "text_encoder": ["transformers", "UMT5EncoderModel"],
    "tokenizer": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "WanTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLWan"],
}


def test_a_folder_in_the_real_wan_layout_loads_in_bf16_through_the_same_path(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "Wan2.1-T2V-1.3B-Diffusers")
    (folder / "model_index.json").write_text(json.dumps(REAL_WAN_INDEX, indent=2))
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    # sharded weights with an index, as the real checkpoint ships its text encoder and transformer
    assert {"text_encoder/model.safetensors.index.json", "text_encoder/config.json",
            "transformer/diffusion_pytorch_model.safetensors.index.json", "transformer/config.json",
            "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json",
            "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"} <= files
    assert len([f for f in files if f.startswith("text_encoder/model-0")]) >= 2
    assert len([f for f in files if f.startswith("transformer/diffusion_pytorch_model-0")]) >= 2

    model = VideoModelResource(model_path=str(folder), model_id="wan2.1-t2v-1.3b", device="cpu",
                               dtype="bfloat16", build_tiny_if_missing=False)
    pipe = model.pipeline()
    assert type(pipe).__name__ == "WanPipeline"
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
    result = model.render(spec_for(model, steps=2))
    assert result.frames.shape == (9, 64, 64, 3) and np.isfinite(result.frames).all()
    assert model.profile().revision != VideoModelResource(model_path=str(tiny_model_dir)).profile().revision


def test_a_folder_missing_a_component_fails_with_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    shutil.rmtree(folder / "vae")
    model = VideoModelResource(model_path=str(folder), build_tiny_if_missing=False)
    with pytest.raises(ModelLoadError, match="missing component 'vae'"):
        model.pipeline()


def test_corrupt_weights_are_a_model_load_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "corrupt")
    shard = sorted((folder / "transformer").glob("*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="cannot load the model"):
        VideoModelResource(model_path=str(folder), build_tiny_if_missing=False).pipeline()


def test_step_control_is_idempotent_and_leaves_interrupt_alone_without_a_gate(model: VideoModelResource) -> None:
    from sora_assets.resources.step_control import enable_step_control

    pipe = model.pipeline()
    cls = type(pipe)
    assert enable_step_control(pipe) is pipe and type(pipe) is cls and cls.__name__ == "WanPipeline"
    pipe._interrupt = True
    assert pipe.interrupt is True
    pipe._interrupt = False
    assert pipe.interrupt is False
    with pytest.raises(TypeError, match="cannot be resumed"):
        enable_step_control(object())


def test_per_sample_slices_only_latent_shaped_tensors() -> None:
    from sora_assets.resources.step_control import per_sample

    batch = torch.arange(2 * 16 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 16, 3, 4, 4)
    state = {"model_outputs": [batch, None], "last_sample": batch, "sigmas": torch.ones(2),
             "timestep_list": [torch.tensor(5.0), None], "lower_order_nums": 1}
    one = per_sample(state, 2, 1)
    assert torch.equal(one["last_sample"], batch[1:2]) and torch.equal(one["model_outputs"][0], batch[1:2])
    assert one["model_outputs"][1] is None and torch.equal(one["sigmas"], torch.ones(2))
    assert one["lower_order_nums"] == 1 and torch.equal(one["timestep_list"][0], torch.tensor(5.0))


def test_a_failed_attempts_spend_after_its_last_checkpoint_is_billed_with_the_resume(
        model: VideoModelResource, spec: GenerationSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: the attempt that died after step 12 spent steps 1..12; its checkpoint (step 10) knows 1..10.
    The journal keeps all twelve, so the clip's bill is the sum of both attempts, not checkpoint + last."""
    from sora_assets.core.render.spend import SpendJournal

    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    journal = SpendJournal(tmp_path / "work", "shard", "clip", "run")
    monkeypatch.setenv(ENV_VAR, "generate.after_step=12:raise")
    with pytest.raises(FailpointError):
        model.render_group([RenderJob(spec, "clip", checkpoints, None, spend=journal)], failpoint_dir=tmp_path / "m")
    (failed,) = journal.records()
    assert failed.steps_done == 12 and not failed.finished
    resume = checkpoints.latest(spec.cache_key(), spec.steps)
    assert resume.next_step == 10 and failed.gpu_seconds > resume.gpu_seconds  # steps 11, 12 only in the journal
    (resumed,) = model.render_group([RenderJob(spec, "clip", checkpoints, resume, spend=journal)],
                                    failpoint_dir=tmp_path / "m")
    first, second = journal.records(spec.cache_key())
    assert (second.resumed_from_step, second.steps_done, second.finished) == (10, 20, True)
    assert second.gpu_seconds == resumed.gpu_seconds
    assert journal.total(spec.cache_key()) == first.gpu_seconds + second.gpu_seconds > resumed.total_gpu_seconds
