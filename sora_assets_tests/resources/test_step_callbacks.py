"""Contract tests: each supported pipeline class calls `interrupt` once per step, before the step, and runs a
`MultiPipelineCallbacks` with the tensors its callbacks name. The resume gate (`step_control.py`) skips done
steps through `interrupt`; if a diffusers upgrade changed either, resumed renders would silently go wrong."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

from sora_assets.resources.step_callbacks import NanGuard, StepClock, StepTimer, combined
from sora_assets.resources.video_model import NonFiniteLatentsError, VideoModelResource

STEPS = 5


class Recorder(PipelineCallback):
    tensor_inputs = ["latents"]

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.shapes: list[tuple[int, ...]] = []

    def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        self.steps.append(step_index)
        self.shapes.append(tuple(tensors["latents"].shape))
        return tensors


class CountingGate:
    """Stands in for the ResumeGate: counts `interrupt` reads and skips the first `skip` steps."""

    def __init__(self, skip: int):
        self.skip, self.calls = skip, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls <= self.skip


# every supported pipeline class: Wan text and image-to-video, LTX-Video text and first-frame
@pytest.fixture(scope="module", params=["wan-text", "wan-image", "ltx-text", "ltx-image"])
def pipe_and_inputs(request: pytest.FixtureRequest, tiny_model_dir: Path, tiny_i2v_dir: Path,
                    tiny_ltx_dir: Path) -> tuple[Any, dict, int]:
    """(the loaded pipeline with step control, its call inputs, the rank of the latents its loop passes)."""
    model = VideoModelResource(model_path=str(tiny_model_dir), i2v_model_path=str(tiny_i2v_dir),
                               ltx_model_path=str(tiny_ltx_dir))
    family, kind = request.param.split("-")
    conditioned = kind == "image"
    pipe = model.pipeline(conditioned, family)
    inputs = {"prompt": "a fox", "height": 64, "width": 64, "num_frames": 9, "num_inference_steps": STEPS,
              "guidance_scale": 5.0, "output_type": "np"}
    if conditioned:
        from PIL import Image

        inputs["image"] = Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8))
    return pipe, inputs, 5 if family == "wan" else 3  # LTX packs its latents into (batch, tokens, channels)


@pytest.mark.parametrize("skip", [0, 2])
def test_the_loop_reads_interrupt_once_per_step_and_skips_what_it_answers_true_for(
        pipe_and_inputs: tuple[Any, dict, int], skip: int) -> None:
    pipe, inputs, rank = pipe_and_inputs
    recorder, gate = Recorder(), CountingGate(skip)
    pipe._sora_resume_gate = gate
    try:
        pipe(**inputs, generator=torch.Generator().manual_seed(1),
             callback_on_step_end=MultiPipelineCallbacks([recorder]))
    finally:
        pipe._sora_resume_gate = None
    assert gate.calls == STEPS  # once per step, whatever it answered
    assert recorder.steps == list(range(skip, STEPS))  # a skipped step runs no callback
    assert recorder.shapes and all(len(shape) == rank for shape in recorder.shapes)  # the named latents came


def test_the_nan_guard_stops_after_the_timer_billed_the_step(pipe_and_inputs: tuple[Any, dict, int]) -> None:
    pipe, inputs, _rank = pipe_and_inputs

    class Poison(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict) -> dict:
            if step_index == 1:
                tensors["latents"] = tensors["latents"] * float("nan")
            return tensors

    clock = StepClock(lambda: None)
    callbacks = combined([Poison(), StepTimer(clock, 1, [None]), NanGuard(clock, ["clip"], NonFiniteLatentsError)])
    assert callbacks.tensor_inputs.count("latents") == 2  # the union the pipeline is asked for
    clock.begin()
    with pytest.raises(NonFiniteLatentsError) as stopped:
        pipe(**inputs, generator=torch.Generator().manual_seed(1), callback_on_step_end=callbacks)
    assert stopped.value.step == 2 and stopped.value.clip_ids == ["clip"]
    assert len(clock.step_seconds) == 2 and stopped.value.gpu_seconds == pytest.approx(clock.elapsed)
