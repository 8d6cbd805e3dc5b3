"""The semantic head's policy thresholds over a grid, on the corpus's VALIDATION split only (never test):
for each (hold, block, likeness, veto) point, the share of unsafe validation rows stopped (blocked or held),
of benign ones stopped, and the strict category's recall, with the whole pre-filter stack as `eval` runs it.
This is how a policy's `semantic_head` thresholds are chosen; the chosen point is written into the policy
by hand with its figures in a comment.

    python bench/safety_thresholds.py [--hold 0.93 0.95] [--block 0.93 0.95] [--likeness 0.93] [--veto 0.95]
                                      [--rule-veto policy explicit_terms:0.997,hate_terms:0.99]
                                      [--category-hold policy self_harm:0.93]

Sentence embeddings do not depend on these thresholds, so each prompt is embedded once (a cache around both
embedders); each point still runs the rules, the classifier and the head (~40-80 s a point on 2 cores).
`--block` applies to every blocking category the head decides except the strict one, whose floor is kept.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
from datetime import UTC, datetime

import numpy as np


def cached(embedder):  # noqa: ANN001, ANN201 - an embedder callable
    """The embedder with a per-text cache: the same prompt's embedding is reused across grid points."""
    memo: dict[str, np.ndarray] = {}

    def embed(texts):  # noqa: ANN001, ANN202
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, embedder(missing), strict=True))
        return np.vstack([memo[t] for t in texts]) if texts else embedder(texts)

    return embed


def thresholds(spec: str) -> dict[str, float]:
    """NAME:P[,NAME:P...] as {name: p}."""
    return {name: float(p) for name, p in (pair.rsplit(":", 1) for pair in spec.split(","))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold", type=float, nargs="+", default=[0.93, 0.94, 0.95, 0.96])
    parser.add_argument("--block", type=float, nargs="+", default=[0.95])
    parser.add_argument("--likeness", type=float, nargs="+", default=[0.93])
    parser.add_argument("--veto", type=float, nargs="+", default=[0.95])
    # a rule's own veto threshold (veto.min_benign_by_rule), RULE:P[,RULE:P] per grid point (a rule not on the
    # veto is added to it); "policy" keeps the policy's
    parser.add_argument("--rule-veto", nargs="+", default=["policy"])
    # a category's own hold threshold (semantic_head.hold_thresholds_by_category), CAT:P[,CAT:P] per grid point
    parser.add_argument("--category-hold", nargs="+", default=["policy"])
    args = parser.parse_args()
    from sora_assets.core.safety.embeddings import embed, multilingual_embed
    from sora_assets.core.safety.policy_file import load_policy
    from sora_assets.core.safety.prefilter import TextPrefilter
    from sora_assets.safety.corpus import load
    from sora_assets.services.safety_eval import split_figures

    policy = load_policy()
    rows = load(split="validation")
    minilm, use = cached(embed), cached(multilingual_embed)
    # the categories whose head score blocks: all but the strict one (its floor stays) and the hold-only ones
    hold_only = set(policy.semantic_head.get("hold_only") or ())
    blocking = [c.name for c in policy.categories if c.name != "sexual_minors" and c.name not in hold_only]
    print(f"{platform.machine()}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}, policy {policy.version}, "
          f"validation {sum(r['label'] == 'unsafe' for r in rows)} unsafe / {sum(r['label'] == 'benign' for r in rows)}"
          " benign")
    print(f"{'hold':>6s}{'block':>7s}{'like':>6s}{'veto':>6s}{'rule veto':>24s}{'unsafe':>9s}{'benign':>9s}"
          f"{'minors':>8s}  category hold")
    grid = itertools.product(args.hold, args.block, args.likeness, args.veto, args.rule_veto, args.category_hold)
    for hold, block, likeness, veto, rule_veto, category_hold in grid:
        variant = copy.deepcopy(policy)
        head = variant.semantic_head
        head["hold_threshold"] = hold
        head["block_thresholds"] = {**head.get("block_thresholds", {}), **dict.fromkeys(blocking, block),
                                    "real_person_likeness": likeness}
        head["veto"] = {**head.get("veto", {}), "min_benign": veto}
        if rule_veto != "policy":  # a rule not yet on the veto is put on it
            own = thresholds(rule_veto)
            head["veto"]["min_benign_by_rule"] = {**head["veto"].get("min_benign_by_rule", {}), **own}
            head["veto"]["rules"] = sorted({*head["veto"].get("rules", ()), *own})
        if category_hold != "policy":
            head["hold_thresholds_by_category"] = thresholds(category_hold)
        figures = split_figures(TextPrefilter(variant, minilm, sentence_embedder=use), rows)
        print(f"{hold:6.3f}{block:7.3f}{likeness:6.3f}{veto:6.3f}{rule_veto:>24s}{figures['intercept_rate']:9.2%}"
              f"{figures['false_block_rate']:9.2%}{figures['minors_recall']:8.1%}  {category_hold}", flush=True)


if __name__ == "__main__":
    main()
