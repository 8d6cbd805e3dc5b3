"""The semantic head at run time: a small neural network (one ReLU hidden layer; a linear model when the file
has none) over USE multilingual v3 sentence embeddings (`embeddings.multilingual_embed`) -> the policy's text
categories, loaded from
`sora_assets/safety/semantic_head.npz` (built from the corpus's train split only by
`python -m sora_assets.safety.semantic_head`; its thresholds chosen on the validation split).

Why beside the rules and the char n-gram classifier: both of those learn the words they were shown, so a
paraphrase or a language they were not written for passes (issue 18: 52% of independently written test
rows). A sentence encoder trained across 16 languages maps "he steps off the ledge" and "er springt von
der Brücke" near each other, so a head fitted on the train split reaches intents it never saw; measured
in docs/SAFETY.md. The model is three small arrays (weights, bias, thresholds) and loads without pickle.

Stacked on the char n-gram classifier (`classifier_weight` > 0): the head also reads that classifier's
log-probabilities, so the words and spellings the classifier learned and the meaning the encoder reads are
weighed together by one model (measured 2026-12-01 on validation rows of five new authors: 61% of their
unsafe prompts stopped against 49% for the encoder alone, at the same false stops on the whole split).

Since 2026-12-06 the head has a hidden layer: left out by author (every author's rows scored by a head fitted
without that author), it stopped 3.1 points more of the unsafe rows than the linear head at the same 2% of
benign rows (docs/SAFETY.md); a linear model cannot combine "the fall" with "no one will find the note".
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import softmax

HEAD_PATH = Path(__file__).resolve().parents[2] / "safety" / "semantic_head.npz"  # data: sora_assets/safety/
EMBEDDING_DIM = 512
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")  # kana and CJK ideographs
_WORD = re.compile(r"[^\W\d_]+")


def content_words(text: str) -> float:
    """How many words a prompt has: letter runs, and for the scripts written without spaces (Chinese,
    Japanese) one word per two characters. The head's scores on a prompt of a few words are its least
    reliable ("kill the music at the end" 0.98 self-harm), so the policy can ask more of them."""
    unspaced = len(_UNSPACED.findall(text))
    return len(_WORD.findall(_UNSPACED.sub(" ", text))) + unspaced / 2


def stacked_features(vectors: np.ndarray, classifier_probabilities: np.ndarray | None, weight: float) -> np.ndarray:
    """The head's input: sentence embeddings, then (when stacked) the classifier's scaled log-probabilities."""
    vectors = np.asarray(vectors, np.float32)
    if weight <= 0:
        return vectors
    if classifier_probabilities is None:
        raise ValueError("this head is stacked on the text classifier: pass its probabilities")
    return np.hstack([vectors, weight * np.log(np.asarray(classifier_probabilities, np.float32) + 1e-4)])


def head_probabilities(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, hidden_weights: np.ndarray | None = None,
                       hidden_bias: np.ndarray | None = None) -> np.ndarray:
    """softmax(relu(x @ hidden_weights + hidden_bias) @ weights + bias), or softmax(x @ weights + bias) for a linear
    head: the one forward pass, for the run-time head and the build's fitted networks alike."""
    if hidden_weights is not None:
        x = np.maximum(x @ hidden_weights + hidden_bias, 0.0)
    return softmax(x @ weights + bias, axis=1)


def stopped(probabilities: np.ndarray, block_thresholds: dict[str, float], hold_threshold: float,
            classes: tuple[str, ...]) -> np.ndarray:
    """Which rows the head's thresholds stop (any category at its block threshold, or 1 - p(benign) at the hold
    threshold), before the policy's overrides: how a head file's thresholds are judged."""
    stops = 1.0 - probabilities[:, classes.index("benign")] >= hold_threshold
    for j, category in enumerate(classes):
        if category != "benign":
            stops |= probabilities[:, j] >= block_thresholds[category]
    return stops


@dataclass
class SemanticHead:
    weights: np.ndarray  # float32 (512 [+ n_classes when stacked], n_classes)
    bias: np.ndarray  # float32 (n_classes,)
    block_thresholds: dict[str, float]  # per unsafe category: its probability at or over this blocks
    hold_threshold: float  # 1 - p(benign) at or over this holds the prompt for review
    classes: tuple[str, ...]
    digest: str = ""
    classifier_weight: float = 0.0  # > 0: stacked on the classifier's log-probabilities (scaled by this)
    hidden_weights: np.ndarray | None = None  # float32 (inputs, hidden): a ReLU layer before `weights`
    hidden_bias: np.ndarray | None = None

    @property
    def stacked(self) -> bool:
        return self.classifier_weight > 0

    def probabilities(self, vectors: np.ndarray, classifier_probabilities: np.ndarray | None = None) -> np.ndarray:
        """(n, n_classes) softmax probabilities for (n, 512) embeddings (and, stacked, the classifier's
        (n, n_classes) probabilities for the same prompts)."""
        if len(vectors) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = stacked_features(vectors, classifier_probabilities, self.classifier_weight)
        return head_probabilities(x, self.weights, self.bias, self.hidden_weights, self.hidden_bias)

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> SemanticHead:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
        hidden = "hidden_weights" in data.files
        return cls(data["weights"].astype(np.float32), data["bias"].astype(np.float32),
                   {k: float(v) for k, v in meta["block_thresholds"].items()}, float(meta["hold_threshold"]),
                   tuple(meta["classes"]), hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                   float(meta.get("classifier_weight", 0.0)),
                   data["hidden_weights"].astype(np.float32) if hidden else None,
                   data["hidden_bias"].astype(np.float32) if hidden else None)


@lru_cache(maxsize=2)
def bundled_semantic_head(path: str = str(HEAD_PATH)) -> SemanticHead:
    return SemanticHead.load(Path(path))
