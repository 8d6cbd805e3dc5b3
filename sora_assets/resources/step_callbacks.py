"""The per-step work of a render as diffusers `PipelineCallback`s, combined with `MultiPipelineCallbacks`.

The pipeline calls `callback_on_step_end(pipe, i, t, tensors)` after each denoising step with the tensors
the callbacks' `tensor_inputs` name (a `MultiPipelineCallbacks` sets `callback_on_step_end_tensor_inputs`
from its callbacks, so the call passes none by hand). In order: the step timer (times the step and journals
its spend), the NaN guard, the checkpoint writer, the acceleration hook's refresh, the progress fan-out and
the failpoint. Every one runs after the timer, so a step that raises (NaN, a failpoint) is already billed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

from sora_assets.core.render import failpoints
from sora_assets.core.render.checkpoints import ClipCheckpoints, StepCheckpoint
from sora_assets.core.render.spend import SpendAttempt


@dataclass
class StepClock:
    """Wall time of one pipeline call, synchronised on CUDA so a step's time is its GPU time."""

    synchronize: Callable[[], None]
    start: float = 0.0
    last: float = 0.0
    step_seconds: list[float] = field(default_factory=list)

    def begin(self) -> None:
        self.synchronize()
        self.start = self.last = time.perf_counter()

    def lap(self) -> float:
        self.synchronize()
        now = time.perf_counter()
        self.step_seconds.append(now - self.last)
        self.last = now
        return now

    @property
    def elapsed(self) -> float:
        return self.last - self.start


class StepTimer(PipelineCallback):
    """Times each step and appends each clip's share of the time so far to its spend journal (one small
    unbuffered write per clip and step: `core/render/spend.py`)."""

    tensor_inputs: list[str] = []

    def __init__(self, clock: StepClock, batch: int, attempts: Sequence[SpendAttempt | None]):
        super().__init__()
        self.clock, self.batch, self.attempts = clock, batch, attempts

    def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        self.clock.lap()
        for attempt in self.attempts:
            if attempt is not None:
                attempt.record(step_index + 1, self.clock.elapsed / self.batch)
        return tensors


class NanGuard(PipelineCallback):
    """Stops the render at the first step whose latents are not finite, naming the clips affected."""

    tensor_inputs = ["latents"]

    def __init__(self, clock: StepClock, clip_ids: Sequence[str], error: Callable[..., BaseException]):
        super().__init__()
        self.clock, self.clip_ids, self.error = clock, clip_ids, error

    def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        import torch

        latents = tensors["latents"]
        finite = torch.isfinite(latents.reshape(latents.shape[0], -1)).all(dim=1).tolist()
        if not all(finite):
            raise self.error(step_index + 1, [self.clip_ids[i] for i, ok in enumerate(finite) if not ok],
                             gpu_seconds=self.clock.elapsed)
        return tensors


@dataclass
class CheckpointPlan:
    """When and for whom a render checkpoints: `due(step)` (the preset's rule), one folder per clip."""

    due: Callable[[int], bool]
    total: int
    checkpoints: Sequence[ClipCheckpoints | None]
    cache_keys: Sequence[str]
    generators: Sequence[Any]
    prior_gpu_seconds: float = 0.0
    prior_step_seconds: list[float] = field(default_factory=list)


class CheckpointWriter(PipelineCallback):
    """Saves latents, scheduler and generator state per clip when a checkpoint is due."""

    tensor_inputs = ["latents"]

    def __init__(self, plan: CheckpointPlan, clock: StepClock, capture: Callable[[Any], dict[str, Any]],
                 family: Any):
        """`family` (a `resources.models.ModelFamily`) knows how one sample's latents and scheduler state are cut
        out of a batch."""
        super().__init__()
        self.plan, self.clock, self.capture, self.family = plan, clock, capture, family
        self.written = 0

    def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        step, plan = step_index + 1, self.plan
        if not plan.due(step) or not any(plan.checkpoints):
            return tensors
        latents, batch = tensors["latents"], len(plan.checkpoints)
        state = self.capture(pipeline.scheduler)
        spent = self.clock.elapsed / batch + plan.prior_gpu_seconds
        for i, folder in enumerate(plan.checkpoints):
            if folder is None:
                continue
            folder.save(StepCheckpoint(
                cache_key=plan.cache_keys[i], next_step=step, total_steps=plan.total,
                latents=self.family.checkpoint_latents(latents, i),
                scheduler_state=self.family.sample_state(state, batch, i),
                generator_state=plan.generators[i].get_state(), gpu_seconds=spent,
                step_seconds=plan.prior_step_seconds + self.clock.step_seconds))
        self.written += 1
        return tensors


class CacheRefresh(PipelineCallback):
    """An accelerated render's hook forgets its cached activations where the preset says, in every render,
    so a render resumed from that step re-derives the same state (nothing of the hook is checkpointed)."""

    tensor_inputs: list[str] = []

    def __init__(self, refreshes_after: Callable[[int], bool], reset: Callable[[Any], None]):
        super().__init__()
        self.refreshes_after, self.reset = refreshes_after, reset

    def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if self.refreshes_after(step_index + 1):
            self.reset(pipeline)
        return tensors


class ProgressFanOut(PipelineCallback):
    """Tells each listener passed in (the step's run log, a progress bar) which step just finished."""

    tensor_inputs: list[str] = []

    def __init__(self, listeners: Sequence[Callable[[Any], None]], event: Callable[[int, bool], Any],
                 due: Callable[[int], bool]):
        super().__init__()
        self.listeners, self.event, self.due = listeners, event, due

    def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if self.listeners:
            event = self.event(step_index + 1, self.due(step_index + 1))
            for listener in self.listeners:
                listener(event)
        return tensors


class StepFailpoint(PipelineCallback):
    """The `generate.after_step=N` chaos site: last, so the step it kills is timed, billed and checkpointed."""

    tensor_inputs: list[str] = []

    def __init__(self, marker_dir: Path | None):
        super().__init__()
        self.marker_dir = marker_dir

    def callback_fn(self, pipeline: Any, step_index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        failpoints.hit("generate.after_step", step_index + 1, self.marker_dir)
        return tensors


def combined(callbacks: Sequence[PipelineCallback]) -> MultiPipelineCallbacks:
    """One `callback_on_step_end` for the pipeline; its `tensor_inputs` are the union the callbacks name."""
    return MultiPipelineCallbacks(list(callbacks))
