"""The learned text classifier at run time: hashed char n-grams + words -> a linear model over the policy's
text categories, loaded from `sora_assets/safety/classifier.npz` (built from the corpus's train split only by
`python -m sora_assets.safety.classifier`, thresholds chosen on validation).

Why this shape: character n-grams carry languages without spaces and survive obfuscation (MiniLM is
English-centric); hashing needs no vocabulary file, so the model is two small arrays (the non-zero
weight columns, float16) plus the thresholds, deterministic from the corpus, and loads without pickle.
The public-figure category is not learned: names are matched from the curated list (a classifier
would learn the likeness contexts, which also occur without a person).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import softmax

MODEL_PATH = Path(__file__).resolve().parents[2] / "safety" / "classifier.npz"  # data: sora_assets/safety/
N_FEATURES = 2**18
CLASSES = ("benign", "sexual_minors", "sexual_explicit", "violence_gore", "self_harm", "hate")


def _vectorizers():  # noqa: ANN202 - sklearn types
    from sklearn.feature_extraction.text import HashingVectorizer

    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), n_features=N_FEATURES, alternate_sign=False,
                              norm="l2", lowercase=False)
    words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=N_FEATURES, alternate_sign=False,
                              norm="l2", lowercase=False, token_pattern=r"(?u)\b\w+\b")
    return chars, words


def features(texts: Sequence[str]):  # noqa: ANN201 - a scipy sparse matrix
    """Both feature blocks summed into one hashed space (the word block's indices offset by half)."""
    chars, words = _vectorizers()
    from scipy.sparse import csr_matrix

    x = chars.transform(texts) + words.transform(texts)[:, ::-1]  # reversed column order: fewer collisions
    return csr_matrix(x, dtype=np.float32)


@dataclass
class TextClassifier:
    columns: np.ndarray  # int32 feature indices with a non-zero weight
    weights: np.ndarray  # float32 (len(columns), n_classes)
    bias: np.ndarray  # float32 (n_classes,)
    thresholds: dict[str, float]
    classes: tuple[str, ...] = CLASSES
    digest: str = ""

    def __post_init__(self) -> None:
        self._dense = np.zeros((N_FEATURES, len(self.classes)), np.float32)
        self._dense[self.columns] = self.weights

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(n, n_classes) softmax probabilities, one batched sparse x dense product."""
        if not texts:
            return np.zeros((0, len(self.classes)), np.float32)
        return softmax(features(texts) @ self._dense + self.bias, axis=1)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> TextClassifier:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
        return cls(data["columns"].astype(np.int32), data["weights"].astype(np.float32),
                   data["bias"].astype(np.float32), meta["thresholds"], tuple(meta["classes"]),
                   hashlib.sha256(path.read_bytes()).hexdigest()[:16])


@lru_cache(maxsize=2)
def bundled_classifier(path: str = str(MODEL_PATH)) -> TextClassifier:
    return TextClassifier.load(Path(path))
