"""Model families as plug-ins: `ModelFamily` (base.py) with Wan and LTX-Video implementations.

A new family: its constraints in `core/render/model_families.py`, a `ModelFamily` subclass here, one line in
`FAMILY_PLUGINS`.
"""

from __future__ import annotations

from sora_assets.core.render.model_families import resolve_family
from sora_assets.resources.models.base import ModelFamily
from sora_assets.resources.models.ltx import LTXFamily
from sora_assets.resources.models.wan import WanFamily

FAMILY_PLUGINS: dict[str, ModelFamily] = {plugin.name: plugin for plugin in (WanFamily(), LTXFamily())}


def get_family(name: str | None) -> ModelFamily:
    """The plug-in for a family name or alias (None: Wan, the family of every spec made before LTX)."""
    return FAMILY_PLUGINS[resolve_family(name).name]


__all__ = ["FAMILY_PLUGINS", "LTXFamily", "ModelFamily", "WanFamily", "get_family"]
