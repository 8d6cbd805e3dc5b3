"""Resume a diffusers pipeline mid-denoise without copying its loop.

Diffusers pipelines start every step with `if self.interrupt: continue`. We give the loaded
pipeline a subclass whose `interrupt` property consults a gate: on its first call (after
`set_timesteps`, before step 1) the gate restores the saved scheduler runtime state, then it
answers True for the `next_step` steps already done. Called with `latents=<checkpoint latents>`,
the pipeline continues exactly where it stopped: bit-identical for deterministic multistep
solvers such as UniPC, which need the history the scheduler state carries (cutting the timestep
list instead is wrong for them; see FIELD_NOTES.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_GATED_CLASSES: dict[type, type] = {}


def _map_tensors(value: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply `fn` to every tensor in nested lists, tuples and dicts (the shapes scheduler state takes).

    Hand-written because torch's own tree_map lives in the private `torch.utils._pytree`.
    """
    import torch

    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, list | tuple):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def capture_scheduler_state(scheduler: Any) -> dict[str, Any]:
    """The scheduler's runtime state (its `__dict__` minus the frozen config), copied to CPU."""
    return {k: _map_tensors(v, lambda t: t.detach().to("cpu", copy=True))
            for k, v in vars(scheduler).items() if k != "_internal_dict"}


def restore_scheduler_state(scheduler: Any, state: dict[str, Any], device: Any) -> None:
    """Put saved state back; each tensor goes where `set_timesteps` put its counterpart (or `device`)."""
    import torch

    for key, value in state.items():
        current = vars(scheduler).get(key)
        target = current.device if isinstance(current, torch.Tensor) else device
        setattr(scheduler, key, _map_tensors(value, lambda t, where=target: t.to(where)))


def per_sample(state: dict[str, Any], batch_size: int, index: int, min_ndim: int = 4) -> dict[str, Any]:
    """One sample's slice of a batched scheduler state: latent-shaped tensors (ndim >= `min_ndim`; the
    model family says: Wan's latents are 5-D, LTX's packed ones 3-D) are sliced."""

    def cut(tensor: Any) -> Any:
        if tensor.ndim >= min_ndim and tensor.shape[0] == batch_size:
            return tensor[index:index + 1].clone()
        return tensor

    return {k: _map_tensors(v, cut) for k, v in state.items()}


class ResumeGate:
    """Skips the first `next_step` steps of the next pipeline call after restoring scheduler state."""

    def __init__(self, pipe: Any, next_step: int, scheduler_state: dict[str, Any], device: Any):
        self.pipe, self.next_step, self.state, self.device = pipe, next_step, scheduler_state, device
        self.calls = 0

    def __call__(self) -> bool:
        if self.calls == 0:
            restore_scheduler_state(self.pipe.scheduler, self.state, self.device)
        self.calls += 1
        return self.calls <= self.next_step


def _gated_class(cls: type) -> type:
    if cls not in _GATED_CLASSES:
        def interrupt(self: Any) -> bool:
            gate = getattr(self, "_sora_resume_gate", None)
            if gate is not None and gate():
                return True
            return self._interrupt

        _GATED_CLASSES[cls] = type(cls.__name__, (cls,), {"interrupt": property(interrupt),
                                                         "__module__": cls.__module__})
    return _GATED_CLASSES[cls]


def enable_step_control(pipe: Any) -> Any:
    """Make `pipe` resumable (idempotent); behaviour is unchanged until a gate is installed."""
    if not hasattr(type(pipe), "interrupt"):
        raise TypeError(f"{type(pipe).__name__} has no `interrupt` property: its loop cannot be resumed")
    if type(pipe) not in _GATED_CLASSES.values():
        pipe.__class__ = _gated_class(type(pipe))
    pipe._sora_resume_gate = None
    return pipe


@contextmanager
def resume_from(pipe: Any, next_step: int, scheduler_state: dict[str, Any] | None,
                device: Any) -> Iterator[ResumeGate | None]:
    """Install a ResumeGate for one pipeline call (none when there is nothing to resume)."""
    gate = ResumeGate(pipe, next_step, scheduler_state, device) if scheduler_state is not None else None
    pipe._sora_resume_gate = gate
    try:
        yield gate
    finally:
        pipe._sora_resume_gate = None
