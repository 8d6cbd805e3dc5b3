"""Are x264's bytes a function of the frames? Repeated encodes of one clip under CPU load, per instruction set.

The content-addressed store needs the same frames to give the same MP4 bytes. With one encoder thread
this held at rest but not in the full test suite on an AVX-512 machine; this script reproduces the
suite's pattern (encode, decode, encode again) while other processes load every core, for three choices
of the instruction sets x264 may use:

- auto: x264's own choice (AVX-512 where the CPU has it);
- capped: encode_mp4's default (x264_cpu_mask: what x264 detects, less AVX-512);
- c: no assembly.

It prints how many encodes differed from the mode's first, whether the three modes' bytes agree, and
each mode's encode time on a realistic clip (no load, best of --rounds), as a ratio against auto.

    python bench/encode_determinism.py [--encodes 1500] [--burners 2] [--size 480x832 --frames 33]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

MODES = {"auto": "auto", "capped": None, "c": "0"}


def _burn(seconds: float) -> None:
    """Loads one core with the kind of work the suite runs beside the encoder (BLAS matmuls)."""
    deadline = time.monotonic() + seconds
    matrix = np.random.default_rng(0).random((600, 600))
    while time.monotonic() < deadline:
        matrix @ matrix


def _smooth_clip(frames: int, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    clip = [np.stack([40 + x * 2 * 64 / width + i * 3, 60 + y * 2 * 48 / height,
                      200 - (x * 64 / width + y * 48 / height) - i * 2], axis=-1) for i in range(frames)]
    return np.clip(np.stack(clip), 0, 255).astype(np.uint8)


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encodes", type=int, default=1500)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--size", default="480x832", help="HxW of the timed clip")
    parser.add_argument("--frames", type=int, default=33, help="frames of the timed clip")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from sora_assets.core.render.video_io import decode_mp4, encode_mp4, x264_cpu_mask

    mask = x264_cpu_mask()
    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; x264 mask (capped): "
          f"{'none found' if mask is None else hex(mask)}")
    small = _smooth_clip(9, 48, 64)
    first = {mode: encode_mp4(small, fps=8, x264_asm=asm) for mode, asm in MODES.items()}
    agree = len({_digest(data) for data in first.values()}) == 1
    print("modes give the same bytes:", agree, {mode: _digest(data) for mode, data in first.items()})

    per_mode_seconds = args.encodes * 0.05 + 10  # generous; burners stop on their own
    with multiprocessing.get_context("spawn").Pool(args.burners) as pool:
        burners = pool.map_async(_burn, [per_mode_seconds * len(MODES)] * args.burners)
        for mode, asm in MODES.items():
            differing = 0
            for _ in range(args.encodes):
                decode_mp4(first[mode])
                differing += encode_mp4(small, fps=8, x264_asm=asm) != first[mode]
            print(f"{mode:>7}: {differing} of {args.encodes} encodes under load differed from the first")
        pool.terminate()
        del burners

    height, width = (int(side) for side in args.size.split("x"))
    clip = _smooth_clip(args.frames, height, width)
    best = dict.fromkeys(MODES, float("inf"))
    for _ in range(args.rounds):  # rounds interleave the modes, so drift in the machine hits all alike
        for mode, asm in MODES.items():
            start = time.perf_counter()
            encode_mp4(clip, fps=16, x264_asm=asm)
            best[mode] = min(best[mode], time.perf_counter() - start)
    for mode, seconds in best.items():
        print(f"{mode:>7}: {args.frames}x{height}x{width} encode {seconds:.3f} s "
              f"({seconds / best['auto']:.2f}x auto)")


if __name__ == "__main__":
    main()
