"""Which semantic head generalises to authors it never saw: every independent author's rows (train + validation,
never test) are scored by heads fitted without that author (five folds of authors; the generated rows always
train), and each head's share of unsafe rows stopped is read at the same share of those benign rows stopped.
The head only, not the stack: this compares recipes, it does not choose the policy's thresholds (validation
does that, bench/safety_thresholds.py).

    python bench/safety_head_by_author.py [--hidden 256 512 1024] [--folds 5]

A hidden set is written by people the corpus never heard from; holding out intents (the split) still lets a
model learn each author's way of writing, so this is the nearer measure of what a new author's prompts meet.
~4-6 min on 2 cores (embedding once, then 2-4 fits a fold).
"""

from __future__ import annotations

import argparse
import functools
import platform
from datetime import UTC, datetime

import numpy as np


def linear(x: np.ndarray, y: np.ndarray, weights: np.ndarray):  # noqa: ANN201 - a sklearn model
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=3000).fit(x, y, sample_weight=weights)  # the recipe until 2026-12-06


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, nargs="+", default=[512])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fpr", type=float, nargs="+", default=[0.01, 0.02, 0.03, 0.05])
    args = parser.parse_args()
    from sora_assets.core.safety.prefilter import head_text
    from sora_assets.core.safety.semantic_head import stacked_features
    from sora_assets.safety import semantic_head as recipe

    train, pool, classifier_rows = recipe.head_pool()
    char_scores, _ = recipe.classifier_scores(pool, classifier_rows)
    x = stacked_features(recipe.embed_all([head_text(r["prompt"]) for r in pool]), char_scores,
                         recipe.CLASSIFIER_WEIGHT).astype(np.float32)
    y = np.array([recipe.HEAD_CLASSES.index(r["category"] or "benign") for r in pool])
    source = np.array([str(r.get("source") or "") for r in pool])
    weights = np.where(source != "", recipe.AUTHORED_WEIGHT, 1.0).astype(np.float32)
    authors = np.random.RandomState(0).permutation(sorted({s for s in source if s}))
    folds = [set(authors[k::args.folds]) for k in range(args.folds)]

    heads = {"linear (logistic regression)": linear} | {
        f"network, {h} hidden": functools.partial(recipe._fit, hidden=h) for h in args.hidden}
    risk = {name: np.zeros(len(pool)) for name in heads}
    for fold in folds:
        held = np.isin(source, sorted(fold))
        for name, fit in heads.items():
            model = fit(x[~held], y[~held], weights[~held])
            risk[name][held] = 1.0 - model.predict_proba(x[held])[:, 0]
    authored = source != ""
    unsafe, benign = authored & (y != 0), authored & (y == 0)
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {int(unsafe.sum())} unsafe and "
          f"{int(benign.sum())} benign rows of {len(authors)} authors, {args.folds} folds of authors")
    print("| head | " + " | ".join(f"unsafe stopped at {f:.0%} benign" for f in args.fpr) + " |")
    print("|---|" + "---|" * len(args.fpr))
    for name, scores in risk.items():
        cells = [np.mean(scores[unsafe] >= np.quantile(scores[benign], 1.0 - f)) for f in args.fpr]
        print(f"| {name} | " + " | ".join(f"{c:.1%}" for c in cells) + " |")


if __name__ == "__main__":
    main()
