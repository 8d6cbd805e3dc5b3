"""Frame post-filter throughput: the policy scan vs raw NudeDetector.detect on the same frames, one run.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

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
