"""Language identification on short prompts: lingua vs pycld2, on the safety corpus, one run.

Rows: the corpus's plain (not code-switched, not obfuscated) prompts, whose language is known.
Prints accuracy per language and microseconds per prompt for each detector. fasttext-langdetect is
not measured: its 1.1.1 wheel is 12 KB and downloads the model on first use (no network at run time).

    python bench/langid.py [--limit 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from datetime import UTC, datetime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    args = parser.parse_args()
    import pycld2
    from lingua import LanguageDetectorBuilder

    from sora_assets.safety.corpus import load

    rows = [r for r in load() if r["style"] == "plain"][: args.limit]
    detectors = {
        "lingua-all-low": LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build(),
        "lingua-all-high": LanguageDetectorBuilder.from_all_languages().build(),
    }

    def cld2(text: str) -> str:
        ok, _, details = pycld2.detect(text)
        return details[0][1] if ok else "un"

    results = {}
    for name, detector in detectors.items():
        detector.detect_language_of("warm up the model")
        began = time.perf_counter()
        found = detector.detect_languages_in_parallel_of([r["prompt"] for r in rows])
        seconds = time.perf_counter() - began
        results[name] = ([f.iso_code_639_1.name.lower() if f else "un" for f in found], seconds)
    began = time.perf_counter()
    results["pycld2"] = ([cld2(r["prompt"]) for r in rows], time.perf_counter() - began)
    print(f"{platform.machine()}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}: {len(rows)} prompts")
    langs = sorted({r["lang"] for r in rows})
    print(f"{'detector':16s} {'acc':>6s} {'us/prompt':>10s}  " + " ".join(f"{lang:>4s}" for lang in langs))
    for name, (found, seconds) in results.items():
        total = Counter(r["lang"] for r in rows)
        hit = Counter(r["lang"] for r, f in zip(rows, found, strict=True) if f == r["lang"])
        accuracy = sum(hit.values()) / len(rows)
        per = " ".join(f"{hit[lang] / total[lang]:4.2f}" for lang in langs)
        print(f"{name:16s} {accuracy:6.3f} {seconds / len(rows) * 1e6:10.1f}  {per}")


if __name__ == "__main__":
    main()
