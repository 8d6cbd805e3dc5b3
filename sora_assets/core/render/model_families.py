"""What each supported model family accepts, without diffusers: the grid sizes and frame counts snap to,
the defaults and the cost prior. Validation and planning read it; `resources/models/` adds the pipelines.

A family is chosen per row (`model` column) or per deployment (`VideoModelResource.model_family`).
"""

from __future__ import annotations

from dataclasses import dataclass

WAN = "wan"
LTX = "ltx"


@dataclass(frozen=True)
class FamilyConstraints:
    """A family's size and frame rules and defaults, as its pipelines enforce them."""

    name: str
    size_multiple: int  # width and height are multiples of this (the VAE x patch compression)
    frame_step: int  # num_frames = frame_step * k + 1 (the VAE's temporal compression)
    max_num_frames: int
    default_guidance_scale: float
    scheduler: str  # the scheduler the family ships (the tiny stand-in uses the same class)
    cost_prior_scale: float  # seconds per step per megavoxel, relative to the shared prior (Wan = 1)
    tiny_model_id: str  # the tiny random stand-in's folder and id, text-to-video
    tiny_i2v_model_id: str  # ... and image-to-video (may be the same folder loaded as another pipeline)
    aliases: tuple[str, ...] = ()

    def snap_frames(self, num_frames: int) -> int:
        """The nearest valid frame count (k * frame_step + 1), kept within max_num_frames."""
        snapped = max(1, int(round((num_frames - 1) / self.frame_step)) * self.frame_step + 1)
        return snapped - self.frame_step if snapped > self.max_num_frames else snapped

    def valid_frames(self, num_frames: int) -> bool:
        return num_frames >= 1 and (num_frames - 1) % self.frame_step == 0 and num_frames <= self.max_num_frames

    def valid_size(self, width: int, height: int) -> bool:
        return width % self.size_multiple == 0 and height % self.size_multiple == 0


FAMILIES: dict[str, FamilyConstraints] = {
    # Wan2.1: VAE 8x spatial / 4x temporal, transformer patch 2: multiples of 16, 4k+1 frames (81 at 16 fps)
    WAN: FamilyConstraints(name=WAN, size_multiple=16, frame_step=4, max_num_frames=161, default_guidance_scale=5.0,
                           scheduler="UniPCMultistepScheduler", cost_prior_scale=1.0, tiny_model_id="tiny-wan",
                           tiny_i2v_model_id="tiny-wan-i2v", aliases=("wan2.1", "wan-2.1")),
    # LTX-Video: VAE 32x spatial / 8x temporal, patch 1: multiples of 32, 8k+1 frames (161 at 24 fps, 257 max).
    # Its prior is a third of Wan's: the 32x VAE leaves 1/4 of the tokens per frame and 1/2 per second.
    LTX: FamilyConstraints(name=LTX, size_multiple=32, frame_step=8, max_num_frames=257, default_guidance_scale=3.0,
                           scheduler="FlowMatchEulerDiscreteScheduler", cost_prior_scale=0.3,
                           tiny_model_id="tiny-ltx", tiny_i2v_model_id="tiny-ltx", aliases=("ltx-video", "ltxv")),
}


def family_names() -> list[str]:
    return sorted(FAMILIES)


def resolve_family(name: str | None, default: str = WAN) -> FamilyConstraints:
    """The family a row's `model` value names (a family name or alias, any case); None: `default`."""
    if name is None or not str(name).strip():
        return FAMILIES[default]
    key = str(name).strip().lower()
    for family in FAMILIES.values():
        if key in (family.name, family.tiny_model_id, family.tiny_i2v_model_id) or key in family.aliases:
            return family
    raise KeyError(f"unknown model family {name!r} (known: {', '.join(family_names())})")


def family_of(name: str | None) -> str:
    """The family name a value names, or WAN for None (specs and rows from before families existed)."""
    return resolve_family(name).name
