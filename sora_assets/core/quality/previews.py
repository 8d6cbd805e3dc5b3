"""Contact sheets: a PNG grid of sampled frames per clip, for previews in the Dagster UI."""

from __future__ import annotations

import numpy as np

GREY = 96


def sample_indices(frame_count: int, samples: int) -> list[int]:
    """`samples` evenly spaced frame indices, first and last included."""
    if frame_count <= samples:
        return list(range(frame_count))
    return [round(i * (frame_count - 1) / (samples - 1)) for i in range(samples)]


def contact_sheet(clips: list[tuple[str, np.ndarray | None]], samples: int = 4, tile: int = 64,
                  image_format: str = "png", jpeg_quality: int = 80, label_width: int | None = None) -> bytes:
    """One row per clip: its label, then `samples` frames scaled to `tile` px high.

    A clip without frames (blocked by the safety scan) gets grey tiles with a cross: a preview must
    never show what the scan kept out. `image_format` "jpeg" is for sheets embedded in run metadata:
    noisy frames make a PNG about five times larger, and every byte lands in the event log.
    `label_width` defaults to three tiles; small tiles need more to show a whole clip id.
    """
    import cv2

    if not clips:
        raise ValueError("a contact sheet needs at least one clip")
    label_width = label_width or tile * 3
    rows = []
    for label, frames in clips:
        row = np.full((tile, label_width + samples * tile, 3), 255, dtype=np.uint8)
        cv2.putText(row, label[-22:], (4, tile // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        for slot in range(samples):
            x = label_width + slot * tile
            if frames is None or slot >= len(sample_indices(frames.shape[0], samples)):
                row[:, x:x + tile] = GREY
                if frames is None:
                    cv2.line(row, (x, 0), (x + tile - 1, tile - 1), (255, 255, 255), 1)
                    cv2.line(row, (x + tile - 1, 0), (x, tile - 1), (255, 255, 255), 1)
                continue
            frame = frames[sample_indices(frames.shape[0], samples)[slot]]
            row[:, x:x + tile] = cv2.resize(frame, (tile, tile), interpolation=cv2.INTER_AREA)
        rows.append(row)
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"contact sheets are png or jpeg, not {image_format!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpeg" else []
    ok, encoded = cv2.imencode(".png" if image_format == "png" else ".jpg",
                               cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError(f"{image_format} encoding failed")
    return encoded.tobytes()
