"""The `ModelFamily` plug-in: everything a diffusers video family needs beyond its pure constraints.

A family says which pipeline classes render its text-only and image-conditioned clips, how a folder loads,
which extra call arguments its pipeline takes, how one sample's latents and scheduler state are cut out of
a batch for a checkpoint, and how its tiny random offline stand-in is built. `VideoModelResource` renders
every family through the same wrapped loop (`callback_on_step_end` + the resume gate of step_control).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from sora_assets.core.render.model_families import FamilyConstraints
from sora_assets.core.render.spec import GenerationSpec


class ModelFamily(ABC):
    """One model family (Wan, LTX-Video, ...): register an instance in `resources/models/__init__.py`."""

    constraints: FamilyConstraints
    text_pipeline: str  # diffusers class name for text-to-video
    image_pipeline: str  # ... and for first-frame (image) conditioned video
    latent_ndim: int  # rank of its denoising latents (Wan: 5, B C F H W; LTX: 3, packed B tokens C)

    @property
    def name(self) -> str:
        return self.constraints.name

    def pipeline_class(self, conditioned: bool) -> type:
        import diffusers

        return getattr(diffusers, self.image_pipeline if conditioned else self.text_pipeline)

    def shares_folder(self) -> bool:
        """True when the image-conditioned pipeline loads the text model's folder (same components)."""
        return self.constraints.tiny_model_id == self.constraints.tiny_i2v_model_id

    @abstractmethod
    def load(self, path: Path, dtype: Any) -> Any:
        """Load the pipeline in `path` (local files only, never the hub)."""

    def call_kwargs(self, spec: GenerationSpec) -> dict[str, Any]:
        """Pipeline arguments beyond prompt, size, frames, steps, guidance, generator and latents."""
        return {}

    def checkpoint_latents(self, latents: Any, index: int) -> Any:
        """Sample `index`'s latents from a batch, copied to CPU (every family batches on dim 0)."""
        return latents[index:index + 1].detach().to("cpu", copy=True)

    def sample_state(self, state: dict[str, Any], batch_size: int, index: int) -> dict[str, Any]:
        """Sample `index`'s slice of a batched scheduler state: tensors shaped like this family's latents."""
        from sora_assets.resources.step_control import per_sample

        return state if batch_size == 1 else per_sample(state, batch_size, index, min_ndim=min(self.latent_ndim, 4))

    @abstractmethod
    def build_tiny(self, target: Path, conditioned: bool = False) -> Path:
        """Build and save the tiny random stand-in into `target` (atomically)."""
