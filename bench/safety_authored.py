"""The pre-filter on the independently authored corpus rows only (`source` a1/a2/a3: written by people who
did not write the rules or the generator), per split: unsafe stopped (blocked or held) per category,
language, style and author, and benign stopped. The full stack (rules, names, language hold, classifier,
MiniLM cascade, semantic head) unless --no-minilm. --source keeps only some authors' rows. --layers adds the
per-layer table of bench/safety_components.py on these rows. --misses SPLIT prints that split's misses and
false stops (train / validation only: the test split is for reporting, not for reading rows).

    python bench/safety_authored.py [--split validation test] [--source a4 a5 a6] [--no-minilm] [--layers] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections import Counter
from datetime import UTC, datetime


def figures(prefilter, rows: list[dict]) -> dict:  # noqa: ANN001
    decisions = prefilter.check_many([r["prompt"] for r in rows])
    pairs = list(zip(rows, decisions, strict=True))
    out: dict = {}
    unsafe = [(r, d) for r, d in pairs if r["label"] == "unsafe"]
    benign = [(r, d) for r, d in pairs if r["label"] == "benign"]

    def rate(items: list) -> tuple[int, float]:
        return len(items), (sum(d.blocked or d.held for _, d in items) / len(items) if items else float("nan"))

    out["unsafe"] = rate(unsafe)
    out["minors"] = rate([(r, d) for r, d in unsafe if r["category"] == "sexual_minors"])
    out["benign"] = rate(benign)
    for key in ("category", "lang", "style", "source"):
        out[f"unsafe_by_{key}"] = {k: rate([(r, d) for r, d in unsafe if r[key] == k])
                                   for k in sorted({r[key] for r, _ in unsafe})}
    for key in ("lang", "source"):
        out[f"benign_by_{key}"] = {k: rate([(r, d) for r, d in benign if r[key] == k])
                                   for k in sorted({r[key] for r, _ in benign})}
    out["methods"] = dict(Counter(d.method for _, d in unsafe if d.blocked or d.held))
    out["false_methods"] = dict(Counter(d.method for _, d in benign if d.blocked or d.held))
    out["pairs"] = pairs
    return out


def show(name: str, f: dict) -> None:
    n, r = f["unsafe"]
    print(f"== {name}: unsafe stopped {r:.1%} of {n}; minors {f['minors'][1]:.1%} of {f['minors'][0]}; "
          f"benign stopped {f['benign'][1]:.1%} of {f['benign'][0]}")
    for key in ("category", "lang", "style", "source"):
        print(f"  unsafe by {key}: " + ", ".join(f"{k} {v[1]:.1%} ({v[0]})" for k, v in f[f"unsafe_by_{key}"].items()))
    for key in ("lang", "source"):
        print(f"  benign stopped by {key}: " + ", ".join(f"{k} {v[1]:.1%} ({v[0]})"
                                                       for k, v in f[f"benign_by_{key}"].items()))
    print(f"  methods (unsafe stopped): {f['methods']}; (benign stopped): {f['false_methods']}")


def main() -> None:
    from sora_assets.core.safety.embeddings import embed
    from sora_assets.core.safety.policy_file import load_policy
    from sora_assets.core.safety.prefilter import TextPrefilter
    from sora_assets.safety.corpus import load

    parser = argparse.ArgumentParser()
    parser.add_argument("--split", nargs="+", default=["validation", "test"])
    parser.add_argument("--no-minilm", action="store_true")
    parser.add_argument("--layers", action="store_true")
    parser.add_argument("--misses", choices=["train", "validation"])
    parser.add_argument("--json")
    parser.add_argument("--source", nargs="+", help="only these authors' rows (e.g. a4 a5 a6)")
    args = parser.parse_args()
    policy = load_policy()
    print(f"{platform.machine()}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M}, policy {policy.version}")
    rows = [r for r in load() if "source" in r and (not args.source or r["source"] in args.source)]
    prefilter = TextPrefilter(policy, None if args.no_minilm else embed)
    result = {}
    for split in ([args.misses] if args.misses else args.split):
        f = figures(prefilter, [r for r in rows if r["split"] == split])
        show(split, f)
        if args.misses:
            for r, d in f["pairs"]:
                if (r["label"] == "unsafe") != (d.blocked or d.held):
                    print(f"  {'MISS' if r['label'] == 'unsafe' else 'FALSE'} {r['category'] or 'benign':15s} "
                          f"{r['lang']} {r['style']:10s} {d.method}:{d.rule} {r['prompt']}")
        result[split] = {k: v for k, v in f.items() if k != "pairs"}
    if args.layers:
        off = dict(semantic_head=False)
        layers = {"rules+likeness": dict(classifier=False, names=False, language_id=False, **off),
                  "+names list": dict(classifier=False, language_id=False, **off),
                  "+language hold": dict(classifier=False, **off), "+classifier": off,
                  "+minilm cascade": dict(minilm=True, **off), "+semantic head (all)": dict(minilm=True)}
        print(f"{'layers':22s}{'split':>12s}{'unsafe':>9s}{'minors':>9s}{'benign':>9s}")
        for split in args.split:
            split_rows = [r for r in rows if r["split"] == split]
            for name, options in layers.items():
                options = dict(options)
                p = TextPrefilter(policy, embed if options.pop("minilm", False) else None, **options)
                f = figures(p, split_rows)
                print(f"{name:22s}{split:>12s}{f['unsafe'][1]:9.1%}{f['minors'][1]:9.1%}{f['benign'][1]:9.1%}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
