"""Optional prompt-frame alignment (CLIP score) from a local CLIP folder; off when none is configured.

No PyPI package here ships CLIP weights, and nothing may be fetched from a hub, so the score exists
only when `model_path` points at a local folder saved by transformers (CLIPModel + tokenizer + image
processor). Score: 100 x the mean cosine similarity of the prompt and the sampled frames, floored at 0.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.quality.previews import sample_indices

_LOCK = threading.Lock()
_MODELS: dict[str, tuple[Any, Any, Any]] = {}


class ClipAlignmentResource(ConfigurableResource):
    model_path: str = Field(default="", description="Local CLIP folder (transformers layout); empty: disabled.")
    frames: int = Field(default=4, description="Frames sampled per clip, first and last included.")

    @property
    def enabled(self) -> bool:
        return bool(self.model_path)

    def _load(self) -> tuple[Any, Any, Any]:
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        path = str(Path(self.model_path).resolve())
        with _LOCK:
            if path not in _MODELS:
                model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
                _MODELS[path] = (model, AutoTokenizer.from_pretrained(path, local_files_only=True),
                                 CLIPImageProcessor.from_pretrained(path, local_files_only=True))
            return _MODELS[path]

    def score(self, prompt: str, frames: np.ndarray) -> float | None:
        """CLIP score of uint8 frames (F, H, W, 3) against the prompt; None when disabled."""
        if not self.enabled:
            return None
        import torch

        model, tokenizer, processor = self._load()
        picked = [frames[i] for i in sample_indices(frames.shape[0], self.frames)]
        with torch.no_grad():
            text = tokenizer([prompt], padding=True, truncation=True,
                             max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
            text_embeds = model.get_text_features(**text)
            image_embeds = model.get_image_features(**processor(images=picked, return_tensors="pt"))
        text_embeds = torch.nn.functional.normalize(_tensor(text_embeds), dim=-1)
        image_embeds = torch.nn.functional.normalize(_tensor(image_embeds), dim=-1)
        return float(100.0 * torch.clamp(image_embeds @ text_embeds.T, min=0).mean())


def _tensor(output: Any) -> Any:
    """get_*_features returns a tensor, or an output object holding the pooled embeddings (newer transformers)."""
    return output if hasattr(output, "ndim") else output.pooler_output


def build_tiny_clip(target: Path, tokenizer_source: Any) -> Path:
    """A tiny randomly initialised CLIP folder for tests and offline demos (never a hub download)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer_source), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 64,
                     "pad_token_id": tokenizer_source.pad_token_id, "eos_token_id": tokenizer_source.eos_token_id,
                     "bos_token_id": tokenizer_source.eos_token_id},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=16)
    CLIPModel(config).save_pretrained(target)
    tokenizer_source.save_pretrained(target)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(target)
    return target
