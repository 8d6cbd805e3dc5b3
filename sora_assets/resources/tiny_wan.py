"""Kept for old imports: the tiny Wan builders live in `resources/models/wan.py`, shared parts in
`resources/models/tiny.py`."""

from __future__ import annotations

from sora_assets.resources.models.tiny import BUILD_SEED, SHARD_BYTES, TOKENIZER_CORPUS
from sora_assets.resources.models.tiny import quiet as _quiet
from sora_assets.resources.models.tiny import save as _save
from sora_assets.resources.models.tiny import tokenizer as _tokenizer
from sora_assets.resources.models.wan import build_tiny_wan, build_tiny_wan_i2v
from sora_assets.resources.models.wan import scheduler as _scheduler
from sora_assets.resources.models.wan import text_and_vae as _text_and_vae
from sora_assets.resources.models.wan import transformer as _transformer

__all__ = ["BUILD_SEED", "SHARD_BYTES", "TOKENIZER_CORPUS", "_quiet", "_save", "_scheduler", "_text_and_vae",
           "_tokenizer", "_transformer", "build_tiny_wan", "build_tiny_wan_i2v"]
