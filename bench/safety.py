"""Safety throughput. Default: the frame post-filter; --text: the text pre-filter.

--text: this tree's TextPrefilter.check_many vs the pre-filter and policy of a git ref (default
origin of this branch: `main`), loaded from git into this process, on the same prompts in the same
run: a seeded mix of the safety corpus (all splits, 13 languages, every style) and the golden sets,
batches of --batch. Prints prompts/s and ms/prompt for each, with and without the MiniLM layer (and
this tree's without its semantic head: `new-head+minilm`), and the ratio. The language id and the MiniLM
model are warmed up first (one-time costs, printed).

    python bench/safety.py --text [--prompts 2000] [--batch 512] [--ref main] [--json]

Frame post-filter: the policy scan vs raw NudeDetector.detect on the same frames, one run.

Frames: an 81-frame 480x832 pan across scikit-image's retina and astronaut photographs (real texture,
one face, no generated content). Measures, each as the median of --repeats:
- raw:      NudeDetector.detect on every frame (the floor any NudeNet-based scan pays);
- policy:   FrameSafetyResource.scan (NudeNet every frame, Haar faces on every 5th + first/last,
            technical checks every frame);
- all:      the same checks with faces on every frame (no sampling policy).
Prints frames/s, the policy/raw ratio (target >= 0.8) and the sampling policy's saving vs `all`.

    python bench/safety.py [--frames 81] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def bench_frames(count: int, height: int = 480, width: int = 832) -> np.ndarray:
    from skimage import data

    retina = data.retina()
    face = np.zeros((height, width, 3), np.uint8)
    astronaut = data.astronaut()
    face[:, 160:160 + astronaut.shape[1]] = astronaut[:height]
    frames = []
    for i in range(count):
        if i % 3 == 0:  # every third frame shows the face, so both paths find something to do
            frames.append(face)
        else:
            top, left = 50 + (i * 4) % 800, 50 + (i * 5) % 500
            frames.append(retina[top:top + height, left:left + width, :3])
    return np.ascontiguousarray(np.stack(frames))


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _old_prefilter(ref: str, embedder):  # noqa: ANN001, ANN202
    """The pre-filter module and policy file of `ref`, loaded from git (not checked out)."""
    import importlib.util
    import subprocess
    import sys
    import tempfile

    import yaml

    from sora_assets.core.safety.policy_file import parse_policy

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "-C", root, "show", f"{ref}:sora_assets/core/safety/prefilter.py"], check=True,
                            capture_output=True, text=True).stdout
    policy_text = subprocess.run(["git", "-C", root, "show", f"{ref}:sora_assets/policies/safety.yaml"], check=True,
                                 capture_output=True, text=True).stdout
    # laid out like the package, so files the module reads beside itself (../safety/given_names.txt)
    # are the ref's own, and so are its model files (below)
    folder = Path(tempfile.mkdtemp(prefix="old_prefilter_"))
    (folder / "core" / "safety").mkdir(parents=True)  # sora_assets/core/safety/prefilter.py
    (folder / "safety").mkdir()
    module_path = folder / "core" / "safety" / "prefilter.py"
    module_path.write_text(source, encoding="utf-8")
    names = subprocess.run(["git", "-C", root, "show", f"{ref}:sora_assets/safety/given_names.txt"],
                           capture_output=True, text=True)
    if names.returncode == 0:
        (folder / "safety" / "given_names.txt").write_text(names.stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("old_prefilter", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_prefilter"] = module
    spec.loader.exec_module(module)
    # the ref's own model files where it has them: this tree's head is stacked on this tree's classifier
    models = {}
    for key, name in (("classifier", "classifier.npz"), ("semantic_head", "semantic_head.npz")):
        blob = subprocess.run(["git", "-C", root, "show", f"{ref}:sora_assets/safety/{name}"], capture_output=True)
        if blob.returncode == 0:
            (folder / "safety" / name).write_bytes(blob.stdout)
            if key == "classifier":
                from sora_assets.core.safety.classifier import TextClassifier

                models[key] = TextClassifier.load(folder / "safety" / name)
            else:
                from sora_assets.core.safety.semantic_head import SemanticHead

                models[key] = SemanticHead.load(folder / "safety" / name)
    return module.TextPrefilter(parse_policy(yaml.safe_load(policy_text), f"{ref}:safety.yaml"), embedder, **models)


def text_bench(prompts_wanted: int, batch: int, ref: str, as_json: bool) -> None:
    import random

    from sora_assets.core.safety.embeddings import embed
    from sora_assets.core.safety.policy_file import load_policy
    from sora_assets.core.safety.prefilter import TextPrefilter
    from sora_assets.safety.corpus import load
    from sora_assets.services.safety_eval import golden_dir, read_jsonl

    pool = [r["prompt"] for r in load()] + [r["prompt"] for name in ("must_block", "must_pass")
                                            for r in read_jsonl(golden_dir() / f"{name}.jsonl")]
    prompts = random.Random(20261201).choices(pool, k=prompts_wanted)
    began = time.perf_counter()
    embed(["warm up"])
    new_semantic = TextPrefilter(load_policy(), embed)
    new_semantic.check_many(pool[:64])  # lingua models, classifier, names index
    warm = time.perf_counter() - began
    filters = {"new": TextPrefilter(load_policy(), None), "new+minilm": new_semantic,
               "new-head+minilm": TextPrefilter(load_policy(), embed, semantic_head=False),
               "old": _old_prefilter(ref, None), "old+minilm": _old_prefilter(ref, embed)}
    results = {}
    for name, prefilter in filters.items():
        prefilter.check_many(prompts[:32])
        began = time.perf_counter()
        for start in range(0, len(prompts), batch):
            prefilter.check_many(prompts[start:start + batch])
        seconds = time.perf_counter() - began
        results[name] = {"seconds": round(seconds, 3), "prompts_per_s": round(len(prompts) / seconds, 1),
                         "ms_per_prompt": round(seconds / len(prompts) * 1000, 3)}
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": f"{datetime.now(UTC):%Y-%m-%d}",
               "prompts": len(prompts), "batch": batch, "ref": ref, "warm_up_s": round(warm, 2), **results,
               "ratio_new_vs_old_minilm": round(results["new+minilm"]["prompts_per_s"]
                                                / results["old+minilm"]["prompts_per_s"], 2)}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['machine']}, {summary['date']}: {len(prompts)} prompts, batches of {batch}, "
          f"baseline {ref}; warm-up {warm:.1f} s")
    for name, r in results.items():
        print(f"  {name:15s} {r['seconds']:8.2f} s  {r['prompts_per_s']:8.1f} prompts/s  {r['ms_per_prompt']:7.3f} ms")
    print(f"  new+minilm / old+minilm throughput = {summary['ratio_new_vs_old_minilm']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--text", action="store_true", help="benchmark the text pre-filter instead")
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--ref", default="main")
    args = parser.parse_args()
    if args.text:
        text_bench(args.prompts, args.batch, args.ref, args.json)
        return

    from sora_assets.resources.safety import FrameSafetyResource, nude_detector

    frames = bench_frames(args.frames)
    detector = nude_detector()
    scanner = FrameSafetyResource()
    prompt = "Maria Lopez walking through a gallery"
    scanner.scan(frames[:3], prompt=prompt)  # warm-up: ONNX session, cascade, policy file

    def raw() -> None:
        for frame in frames:
            detector.detect(np.ascontiguousarray(frame[:, :, ::-1]))

    def scan_policy() -> None:
        scanner.scan(frames, prompt=prompt)

    def scan_all() -> None:  # the same scan without the sampling policy: faces on every frame
        scanner.scan_with_faces_on(frames, list(range(len(frames))), prompt=prompt)

    results = {}
    for name, fn in (("raw", raw), ("policy", scan_policy), ("all", scan_all)):
        seconds = median_seconds(fn, args.repeats)
        results[name] = {"seconds": round(seconds, 3), "frames_per_s": round(len(frames) / seconds, 2)}
    verdict = scanner.scan(frames, prompt=prompt)
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "frames": len(frames), "size": f"{frames.shape[2]}x{frames.shape[1]}", **results,
        "policy_vs_raw": round(results["policy"]["frames_per_s"] / results["raw"]["frames_per_s"], 3),
        "sampling_saving_pct": round(100 * (1 - results["policy"]["seconds"] / results["all"]["seconds"]), 1),
        "faces_checked": verdict.faces_checked, "verdict": verdict.verdict,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['machine']}, {summary['date']}: {summary['frames']} frames {summary['size']}")
    for name in ("raw", "policy", "all"):
        print(f"  {name:6s} {results[name]['seconds']:7.3f} s  {results[name]['frames_per_s']:7.2f} frames/s")
    print(f"  policy / raw = {summary['policy_vs_raw']:.3f} (target >= 0.8); sampling saves "
          f"{summary['sampling_saving_pct']}% vs faces on every frame; faces checked on "
          f"{summary['faces_checked']} frames; verdict {summary['verdict']}")


if __name__ == "__main__":
    main()
