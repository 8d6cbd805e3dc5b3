"""H.264 MP4 encode/decode with PyAV."""

from __future__ import annotations

import av
import numpy as np
import pytest

from sora_assets.core.render import video_io
from sora_assets.core.render.video_io import decode_mp4, encode_mp4, probe_mp4


def _smooth_clip(frames: int = 9, height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth diagonal gradient drifting a little each frame (no wrap-around edges)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    clip = []
    for i in range(frames):
        r = 40 + x * 2 + i * 3
        g = 60 + y * 2
        b = 200 - (x + y) - i * 2
        clip.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.stack(clip), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return _smooth_clip()


@pytest.fixture(scope="module")
def encoded(clip) -> bytes:
    return encode_mp4(clip, fps=8)


def test_encode_produces_mp4(encoded):
    assert encoded[4:8] == b"ftyp"  # ISO base media file
    # one encoder thread, as encode_mp4 asks (what a byte mismatch's message reports)
    assert " threads=1 " in f" {_x264_options(encoded)} "


def test_round_trip_keeps_count_shape_and_pixels(clip, encoded):
    decoded = decode_mp4(encoded)
    assert decoded.dtype == np.uint8
    assert decoded.shape == clip.shape
    error = np.abs(decoded.astype(np.int16) - clip.astype(np.int16))
    assert error.mean() < 3.0
    # every frame individually close too: the order is kept
    per_frame = error.reshape(clip.shape[0], -1).mean(axis=1)
    assert per_frame.max() < 4.0


def test_round_trip_frames_stay_in_order(clip, encoded):
    decoded = decode_mp4(encoded).astype(np.float32)
    # red channel mean grows by ~3 per frame in the source; decoded must follow
    red_means = decoded[..., 0].reshape(decoded.shape[0], -1).mean(axis=1)
    assert np.all(np.diff(red_means) > 0)


def _x264_options(data: bytes) -> str:
    """The settings x264 wrote into the stream's SEI ("... options: cabac=1 ref=3 ... threads=1 ..."): on a byte
    mismatch, says whether the two encodes ran with different settings (threads, lookahead) or the same ones."""
    start = data.find(b"x264 - core")
    return data[start:data.find(b"\x00", start)].decode("latin-1").split(" options: ")[-1] if start >= 0 else ""


def _mismatch(a: bytes, b: bytes) -> str:
    options = (_x264_options(a), _x264_options(b))
    return (f"differing boxes: {_differing_boxes(a, b)}; x264 options "
            + ("identical" if options[0] == options[1] else f"differ: {options[0]!r} vs {options[1]!r}"))


def _differing_boxes(a: bytes, b: bytes) -> list[str]:
    """The MP4 boxes (nested in moov's sample tables) whose bytes differ: says whether a nondeterministic
    encode changed the bitstream (mdat, stsz) or only a header field (e.g. btrt's bitrates)."""
    import struct

    def boxes(data: bytes, start: int, end: int, path: str) -> dict[str, bytes]:
        found, offset = {}, start
        while offset + 8 <= end:
            size, kind = struct.unpack(">I4s", data[offset:offset + 8])
            if size < 8:
                break
            name = f"{path}/{kind.decode('latin-1')}"
            found[name] = data[offset:offset + size]
            if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
                found.update(boxes(data, offset + 8, offset + size, name))
            offset += size
        return found

    left, right = boxes(a, 0, len(a), ""), boxes(b, 0, len(b), "")
    return sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))


def test_encoding_is_deterministic(clip, encoded):
    again = encode_mp4(clip, fps=8)
    assert again == encoded, _mismatch(again, encoded)


def test_different_frames_give_different_bytes(clip, encoded):
    other = clip.copy()
    other[4] = 255 - other[4]
    assert encode_mp4(other, fps=8) != encoded


def test_decode_from_path_and_probe(tmp_path, clip, encoded):
    path = tmp_path / "clip.mp4"
    path.write_bytes(encoded)
    assert decode_mp4(path).shape == clip.shape
    info = probe_mp4(path)
    assert info["codec"] == "h264"
    assert (info["width"], info["height"]) == (64, 48)
    assert info["frames"] == clip.shape[0]
    assert info["fps"] == pytest.approx(8.0)


def test_fps_is_recorded(tmp_path, clip):
    path = tmp_path / "fast.mp4"
    path.write_bytes(encode_mp4(clip, fps=24))
    assert probe_mp4(path)["fps"] == pytest.approx(24.0)


def test_single_frame_clip(clip):
    decoded = decode_mp4(encode_mp4(clip[:1], fps=8))
    assert decoded.shape == (1, 48, 64, 3)


@pytest.mark.parametrize(("height", "width"), [(47, 64), (48, 63), (17, 17)])
def test_odd_sizes_raise(height, width):
    frames = np.zeros((2, height, width, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="even"):
        encode_mp4(frames, fps=8)


@pytest.mark.parametrize("frames", [
    np.zeros((2, 16, 16, 3), dtype=np.float32),
    np.zeros((16, 16, 3), dtype=np.uint8),
    np.zeros((2, 16, 16, 4), dtype=np.uint8),
    np.zeros((2, 16, 16), dtype=np.uint8),
])
def test_wrong_dtype_or_shape_raise(frames):
    with pytest.raises(ValueError, match="expected uint8 frames"):
        encode_mp4(frames, fps=8)


def test_decode_garbage_raises():
    with pytest.raises(av.error.FFmpegError):
        decode_mp4(b"definitely not an mp4 file")


def _top_level_boxes(data: bytes) -> list[str]:
    import struct

    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def test_clips_are_fast_start_and_byte_deterministic(clip, encoded, tmp_path):
    """moov before mdat: a browser plays the clip before it has the whole file; same frames, same bytes."""
    boxes = _top_level_boxes(encoded)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    for again in (encode_mp4(clip, fps=8), encode_mp4(clip, fps=8, scratch_dir=tmp_path)):
        assert again == encoded, _mismatch(again, encoded)
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_x264_is_capped_below_avx512_and_to_what_it_detects():
    """x264's AVX-512 code gave different bytes for the same frames under load (bench/encode_determinism.py);
    the mask leaves AVX-512 out and never adds a set x264 did not detect on this CPU."""
    mask = video_io.x264_cpu_mask()
    assert mask is not None, "PyAV's libx264 not found: encodes fall back to x264's own choice"
    library = video_io._libx264()
    flags = {entry.name.decode(): entry.flags for entry in video_io._cpu_names(library)}
    assert mask & (flags["AVX512"] & ~flags["AVX2"]) == 0
    assert mask & ~library.x264_cpu_detect() == 0
    assert video_io._x264_cpu_option(None) == {"x264-params": f"asm={mask}"}


def test_capped_uncapped_and_c_only_encodes_give_the_same_bytes(clip, encoded):
    """The cap changes no clip: x264 keeps its assembly bit-exact with its C, so a clip rendered on a machine
    with or without AVX-512 (or with no assembly) is stored under the same digest."""
    assert encode_mp4(clip, fps=8, x264_asm="auto") == encoded
    assert encode_mp4(clip, fps=8, x264_asm="0") == encoded
