"""The semantic head at run time: a linear model over USE multilingual v3 sentence embeddings
(`embeddings.multilingual_embed`) -> the policy's text categories, loaded from
`sora_assets/safety/semantic_head.npz` (built from the corpus's train split only by
`python -m sora_assets.safety.semantic_head`; its thresholds chosen on the validation split).

Why beside the rules and the char n-gram classifier: both of those learn the words they were shown, so a
paraphrase or a language they were not written for passes (issue 18: 52% of independently written test
rows). A sentence encoder trained across 16 languages maps "he steps off the ledge" and "er springt von
der Brücke" near each other, so a head fitted on the train split reaches intents it never saw; measured
in docs/SAFETY.md. The model is three small arrays (weights, bias, thresholds) and loads without pickle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import softmax

HEAD_PATH = Path(__file__).resolve().parents[2] / "safety" / "semantic_head.npz"  # data: sora_assets/safety/


@dataclass
class SemanticHead:
    weights: np.ndarray  # float32 (512, n_classes)
    bias: np.ndarray  # float32 (n_classes,)
    block_thresholds: dict[str, float]  # per unsafe category: its probability at or over this blocks
    hold_threshold: float  # 1 - p(benign) at or over this holds the prompt for review
    classes: tuple[str, ...]
    digest: str = ""

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, n_classes) softmax probabilities for (n, 512) embeddings."""
        if len(vectors) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return softmax(vectors.astype(np.float32) @ self.weights + self.bias, axis=1)

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> SemanticHead:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
        return cls(data["weights"].astype(np.float32), data["bias"].astype(np.float32),
                   {k: float(v) for k, v in meta["block_thresholds"].items()}, float(meta["hold_threshold"]),
                   tuple(meta["classes"]), hashlib.sha256(path.read_bytes()).hexdigest()[:16])


@lru_cache(maxsize=2)
def bundled_semantic_head(path: str = str(HEAD_PATH)) -> SemanticHead:
    return SemanticHead.load(Path(path))
