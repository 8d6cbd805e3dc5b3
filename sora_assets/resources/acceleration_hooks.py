"""Apply an acceleration preset to a loaded pipeline's transformer with diffusers' own cache hooks.

The hooks are diffusers' (`CacheMixin.enable_cache`); this module only maps a preset to its config,
keeps them on for one pipeline call, and resets their state where the preset says (see
`sora_assets.core.render.acceleration` for why that keeps resume bit-exact).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sora_assets.core.render.acceleration import Preset


def cache_config(preset: Preset, pipe: Any) -> Any:
    """The diffusers config object for `preset` (None for exact)."""
    import diffusers

    params = dict(preset.params)
    if preset.method == "none":
        return None
    if preset.method == "first_block_cache":
        return diffusers.FirstBlockCacheConfig(**params)
    if preset.method == "taylorseer":
        import torch

        # factors kept in the transformer's dtype: bf16 factors on an fp32 CPU model would add their own error
        return diffusers.TaylorSeerCacheConfig(taylor_factors_dtype=pipe.transformer.dtype or torch.float32,
                                               **params)
    raise ValueError(f"no diffusers config for method {preset.method!r}")


def transformers_of(pipe: Any) -> list[Any]:
    """The denoisers a preset applies to (Wan2.2 pipelines carry a second one)."""
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def reset_cache_state(pipe: Any) -> None:
    """Forget every cached activation: the next step runs in full (`_reset_stateful_cache`)."""
    for model in transformers_of(pipe):
        if getattr(model, "is_cache_enabled", False):
            model._reset_stateful_cache()


@contextmanager
def preset_applied(pipe: Any, preset: Preset) -> Iterator[None]:
    """Hooks on for one generation, with fresh state; always off again afterwards, even on errors, because the
    pipeline is shared by every render of the process."""
    if not preset.accelerated:
        yield
        return
    models = transformers_of(pipe)
    for model in models:
        if getattr(model, "is_cache_enabled", False):  # left behind by a crashed caller: start clean
            model.disable_cache()
        model.enable_cache(cache_config(preset, pipe))
    try:
        reset_cache_state(pipe)
        yield
    finally:
        for model in models:
            if getattr(model, "is_cache_enabled", False):
                model._reset_stateful_cache()
                model.disable_cache()
