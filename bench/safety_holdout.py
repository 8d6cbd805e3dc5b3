"""The pre-filter on the held-out probe `bench/data/safety_holdout_probe.jsonl`: 322 prompts (161 unsafe in five
categories incl. 33 public-figure likeness prompts, 161 hard benign; 13 languages, one phrasing per intent)
written on 2026-12-01 by a helper that saw neither the rules, the corpus nor the other authors' rows.

It is a test set, not training data: no rule, list, threshold or model may be written from its rows, and this
script prints aggregates only (no prompt), so a run never shows what it missed. (It has no sexual_minors rows:
its author declined to write them; that category is measured on the corpus.) First measured on policy
2026-12-01.3 before any of the work it measures; see docs/SAFETY.md.

    python bench/safety_holdout.py [--probe FILE] [--no-head] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

PROBE = Path(__file__).resolve().parent / "data" / "safety_holdout_probe.jsonl"


def score(prefilter, rows: list[dict]) -> dict:  # noqa: ANN001
    decisions = prefilter.check_many([r["prompt"] for r in rows])
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, decision in zip(rows, decisions, strict=True):
        stopped = int(decision.blocked or decision.held)
        keys = ["benign"] if row["label"] == "benign" else ["unsafe", f"category:{row['category']}",
                                                            f"lang:{row['lang']}"]
        for key in keys:
            per[key][0] += stopped
            per[key][1] += 1
    return {"policy": prefilter.policy.version, **{k: {"stopped": a, "of": b, "rate": round(a / b, 4)}
                                                   for k, (a, b) in sorted(per.items())}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--probe", type=Path, default=PROBE, help="another held-out file of the same shape")
    parser.add_argument("--no-head", action="store_true", help="without the semantic head (what it adds)")
    args = parser.parse_args()
    from sora_assets.core.safety.embeddings import embed
    from sora_assets.core.safety.policy_file import load_policy
    from sora_assets.core.safety.prefilter import TextPrefilter, default_prefilter

    rows = [json.loads(line) for line in args.probe.read_text(encoding="utf-8").splitlines() if line.strip()]
    prefilter = TextPrefilter(load_policy(), embed, semantic_head=False) if args.no_head else default_prefilter()
    figures = score(prefilter, rows)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"policy {figures.pop('policy')}")
    for key, value in figures.items():
        print(f"{key:32s} {value['stopped']:4d} / {value['of']:4d}  {value['rate']:.1%}")


if __name__ == "__main__":
    main()
