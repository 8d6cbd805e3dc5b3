"""H.264 MP4 in and out with PyAV (libx264, yuv420p: what browsers play)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import tempfile
from pathlib import Path

import av
import numpy as np


def encode_mp4(frames: np.ndarray, fps: int, crf: int = 18, scratch_dir: Path | None = None, *,
               x264_asm: str | None = None) -> bytes:
    """uint8 RGB frames (F, H, W, 3) to fast-start MP4 bytes; x264 output is deterministic for fixed input.

    Fast start (`moov` before `mdat`) lets a browser or CDN play the clip before the whole file arrives.
    FFmpeg's `+faststart` moves the box in a second pass that re-opens the output by name, so the clip is
    written to a scratch file (removed at once) rather than to memory. `x264_asm` overrides the instruction
    sets x264 may use (its `asm` parameter: "auto" for its own choice, "0" for C only); the default is
    x264_cpu_mask, the deterministic choice (benchmarks and tests compare the others)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if width % 2 or height % 2:
        raise ValueError("yuv420p needs even width and height")
    with tempfile.TemporaryDirectory(prefix="encode-", dir=scratch_dir) as scratch:
        target = Path(scratch) / "clip.mp4"
        _encode_to(target, frames, fps, crf, width, height, x264_asm)
        return target.read_bytes()


def _encode_to(target: Path, frames: np.ndarray, fps: int, crf: int, width: int, height: int,
               x264_asm: str | None) -> None:
    with av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", **_x264_cpu_option(x264_asm)}
        # one encoder thread: with FFmpeg's automatic threading the bitstream changed in 2 of 300 encodes
        # under CPU load (measured); the store is content-addressed, so the same frames must give the same
        # bytes. One thread was not enough on an AVX-512 CPU: see x264_cpu_mask.
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@functools.cache
def x264_cpu_mask() -> int | None:
    """The instruction sets x264 may use: what it detects on this CPU, less AVX-512; None if the library
    PyAV loaded cannot be found (x264 then picks for itself).

    Measured on this machine (AMD EPYC with AVX-512, bench/encode_determinism.py): with x264's own choice
    20 of 1,500 encodes of the same frames under CPU load, each after a decode, gave different bytes; capped
    at AVX2, 0 of 1,500 (and 0 of 1,500 with no assembly at all). The capped, uncapped and C-only outputs are
    byte-identical when the bug does not strike (x264 keeps its assembly bit-exact with its C), so the cap
    changes no clip, only makes the bytes a function of the frames, which the content-addressed store needs.
    x264 exposes its own detection (x264_cpu_detect) and flag table (x264_cpu_names); reading both keeps the
    mask right for any CPU, never enabling a set the CPU lacks."""
    library = _libx264()
    if library is None:
        return None
    library.x264_cpu_detect.restype = ctypes.c_uint32
    flags = {entry.name.decode(): entry.flags for entry in _cpu_names(library)}
    # an x264 built for another architecture (ARM) names no x86 sets: nothing to take away
    avx512_only = flags["AVX512"] & ~flags["AVX2"] if {"AVX512", "AVX2"} <= flags.keys() else 0
    return int(library.x264_cpu_detect()) & ~avx512_only


class _X264CpuName(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("flags", ctypes.c_uint32)]


def _cpu_names(library: ctypes.CDLL) -> list[_X264CpuName]:
    table = (_X264CpuName * 64).in_dll(library, "x264_cpu_names")
    names = []
    for entry in table:  # the table ends with an empty name
        if not entry.name:
            break
        names.append(entry)
    return names


def _libx264() -> ctypes.CDLL | None:
    """The libx264 PyAV's libavcodec links: the wheel's bundled copy (auditwheel's av.libs, delocate's
    .dylibs) or, for a PyAV built against system FFmpeg, the system one. dlopen of a loaded file returns
    the loaded library, so this is the same x264 that encodes."""
    package = Path(av.__file__).parent
    candidates = sorted(package.parent.glob("av.libs/libx264*")) + sorted(package.glob(".dylibs/libx264*"))
    system = ctypes.util.find_library("x264")
    for candidate in [*map(str, candidates), *([system] if system else [])]:
        try:
            library = ctypes.CDLL(candidate)
            library.x264_cpu_detect  # noqa: B018 - raises AttributeError when the symbol is absent
            return library
        except (OSError, AttributeError):
            continue
    return None


def _x264_cpu_option(x264_asm: str | None) -> dict[str, str]:
    if x264_asm is None:
        mask = x264_cpu_mask()
        x264_asm = None if mask is None else str(mask)
    return {} if x264_asm is None else {"x264-params": f"asm={x264_asm}"}


def decode_mp4(source: Path | bytes) -> np.ndarray:
    """All frames as uint8 RGB (F, H, W, 3)."""
    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source)
    with av.open(handle) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise ValueError("video has no frames")
    return np.stack(frames)


def probe_mp4(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {"codec": stream.codec_context.name, "width": stream.codec_context.width,
                "height": stream.codec_context.height, "frames": stream.frames,
                "fps": float(stream.average_rate) if stream.average_rate else None}
