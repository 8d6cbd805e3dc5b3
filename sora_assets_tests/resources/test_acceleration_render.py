"""Presets on the real diffusers hooks: they change frames, never leak into other renders, and resume bit-exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sora_assets.core.render import acceleration
from sora_assets.core.render.checkpoints import ClipCheckpoints
from sora_assets.core.render.failpoints import ENV_VAR, FailpointError
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.video_model import RenderJob, VideoModelResource
from sora_assets_tests.resources.test_resume import KILL_SCRIPT
from sora_assets_tests.resources.test_video_model import spec_for


def fail_at_step_27_then_resume(model: VideoModelResource, spec: GenerationSpec, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch):
    """Render until a failpoint raises after step 27, then render again from the checkpoints."""
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    monkeypatch.setenv(ENV_VAR, "generate.after_step=27:raise")
    with pytest.raises(FailpointError):
        model.render(spec, "clip", checkpoints, failpoint_dir=tmp_path / "marks")
    monkeypatch.delenv(ENV_VAR)
    return model.render(spec, "clip", checkpoints)


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> VideoModelResource:
    return VideoModelResource(model_path=str(tiny_model_dir), checkpoint_every=5)


@pytest.fixture(scope="module")
def exact_spec(model: VideoModelResource) -> GenerationSpec:
    return spec_for(model, steps=30, seed=4321)


@pytest.fixture(scope="module")
def frames(model: VideoModelResource, exact_spec: GenerationSpec) -> dict[str, np.ndarray]:
    """One uninterrupted render per preset, same seed."""
    return {name: model.render(replace(exact_spec, preset=name)).frames for name in acceleration.PRESETS}


def test_presets_change_the_frames_and_leave_no_hook_behind(model: VideoModelResource, exact_spec: GenerationSpec,
                                                            frames: dict[str, np.ndarray]) -> None:
    for name in ("fast", "fastest"):
        assert not np.array_equal(frames[name], frames["exact"]), f"{name} skipped nothing"
        assert np.isfinite(frames[name]).all()
    transformer = model.pipeline().transformer
    assert not transformer.is_cache_enabled
    assert np.array_equal(model.render(exact_spec).frames, frames["exact"])  # an exact render after presets
    assert np.array_equal(model.render(replace(exact_spec, preset="fastest")).frames, frames["fastest"])


def test_hooks_are_removed_when_a_render_fails(model: VideoModelResource, exact_spec: GenerationSpec,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "generate.after_step=3:raise")
    with pytest.raises(FailpointError):
        model.render(replace(exact_spec, preset="fast"), failpoint_dir=tmp_path / "marks")
    assert not model.pipeline().transformer.is_cache_enabled


def test_accelerated_clips_checkpoint_only_where_the_hook_state_is_reset(model: VideoModelResource,
                                                                         exact_spec: GenerationSpec,
                                                                         tmp_path: Path) -> None:
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip", keep=10)
    model.render(replace(exact_spec, preset="fast"), "clip", checkpoints)
    assert checkpoints.steps_saved() == [25]  # checkpoint_every=5, refresh_every=25, 30 steps
    exact = ClipCheckpoints(tmp_path / "ck", "shard", "exact", keep=10)
    model.render(exact_spec, "exact", exact)
    assert exact.steps_saved() == [5, 10, 15, 20, 25]


@pytest.mark.parametrize("preset", ["fast", "fastest"])
def test_resume_after_a_failure_is_bit_exact_with_a_preset(model: VideoModelResource, exact_spec: GenerationSpec,
                                                           frames: dict[str, np.ndarray], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, preset: str) -> None:
    spec = replace(exact_spec, preset=preset)
    resumed = fail_at_step_27_then_resume(model, spec, tmp_path, monkeypatch)
    assert resumed.resumed_from_step == 25 and resumed.steps_computed == 5
    assert np.array_equal(resumed.frames, frames[preset])


def test_resume_after_a_real_sigkill_is_bit_exact_with_a_preset(model: VideoModelResource,
                                                                exact_spec: GenerationSpec,
                                                                frames: dict[str, np.ndarray], tmp_path: Path) -> None:
    spec = replace(exact_spec, preset="fastest")
    args = {"model": model.model_path, "every": 5, "spec": spec.to_dict(), "root": str(tmp_path / "ck"),
            "marks": str(tmp_path / "marks")}
    env = {**os.environ, ENV_VAR: "generate.after_step=26:kill"}
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(args)], env=env,
                            capture_output=True, text=True, timeout=180)
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = ClipCheckpoints(tmp_path / "ck", "shard", "clip")
    assert checkpoints.steps_saved() == [25]
    resumed = model.render(spec, "clip", checkpoints)
    assert resumed.resumed_from_step == 25
    assert np.array_equal(resumed.frames, frames["fastest"])


def test_without_the_refresh_a_resumed_taylorseer_render_differs(model: VideoModelResource,
                                                                  exact_spec: GenerationSpec,
                                                                  frames: dict[str, np.ndarray], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the refresh exists: TaylorSeer's state (step counter, Taylor factors) cannot be re-derived by a resumed
    render unless every render resets it at the checkpoint steps."""

    class NoRefresh(acceleration.Preset):
        def refreshes_after(self, step: int, total_steps: int) -> bool:
            return False

    monkeypatch.setitem(acceleration.PRESETS, "fastest", NoRefresh(**{
        k: getattr(acceleration.PRESETS["fastest"], k) for k in ("name", "method", "params", "refresh_every")}))
    spec = replace(exact_spec, preset="fastest")
    uninterrupted = model.render(spec).frames
    assert not np.array_equal(uninterrupted, frames["fastest"])  # the refresh itself changes the render
    resumed = fail_at_step_27_then_resume(model, spec, tmp_path, monkeypatch)
    assert resumed.resumed_from_step == 25
    assert not np.array_equal(resumed.frames, uninterrupted)


def test_an_accelerated_clip_never_shares_a_denoising_batch(model: VideoModelResource,
                                                            exact_spec: GenerationSpec) -> None:
    jobs = [RenderJob(replace(exact_spec, preset="fast", seed=seed), f"c{seed}") for seed in (1, 2)]
    with pytest.raises(ValueError, match="renders alone"):
        model.render_group(jobs)
