"""What each pre-filter layer adds on the corpus's validation and test splits, one run.

Layers are added in order: rules (policy term lists, innocent-phrase exceptions, the strict
category's minor+sexual rule, and the unknown-name likeness hold) -> + the public-figure names list ->
+ language hold -> + classifier -> + MiniLM similarity (cascade) -> + the semantic head (USE
multilingual). Prints, per split, the share of
unsafe prompts stopped (blocked or held), of the strict category, and of benign prompts stopped.

    python bench/safety_components.py
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime


def main() -> None:
    from sora_assets.core.safety.embeddings import embed
    from sora_assets.core.safety.policy_file import load_policy
    from sora_assets.core.safety.prefilter import TextPrefilter
    from sora_assets.safety.corpus import load
    from sora_assets.services.safety_eval import split_figures

    policy = load_policy()
    off = dict(semantic_head=False)
    layers = {
        "rules+likeness": dict(classifier=False, names=False, language_id=False, **off),
        "+names list": dict(classifier=False, language_id=False, **off),
        "+language hold": dict(classifier=False, **off),
        "+classifier": off,
        "+minilm cascade": dict(minilm=True, **off),
        "+semantic head (all)": dict(minilm=True),
    }
    print(f"{platform.machine()}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}, policy {policy.version}")
    print(f"{'layers':22s}{'split':>12s}{'unsafe':>9s}{'minors':>9s}{'benign':>9s}")
    for split in ("validation", "test"):
        rows = load(split=split)
        for name, options in layers.items():
            options = dict(options)
            prefilter = TextPrefilter(policy, embed if options.pop("minilm", False) else None, **options)
            figures = split_figures(prefilter, rows)
            print(f"{name:22s}{split:>12s}{figures['intercept_rate']:9.1%}{figures['minors_recall']:9.1%}"
                  f"{figures['false_block_rate']:9.1%}")


if __name__ == "__main__":
    main()
