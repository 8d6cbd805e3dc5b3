"""The clip as it moves through a shard: one typed record from validation to the warehouse.

`validated_prompts` accepts a row; `rendered_clips` gives it a `RenderStatus` and its render's facts;
`screened_clips` a verdict; `signed_clips` a manifest; `published_clips` a store object and a final status.
Each stage fills its own fields (grouped below) and passes the record on; the IO manager pickles it.

The record also answers the mapping calls (`clip["x"]`, `clip.get("x")`, `clip.update(...)`, `**clip`) that
the stages and the row builders in `core/warehouse/ledger.py` used when a clip was a dict, so a value pickled by an
older run still loads (`ClipRecord.coerce`), but unlike a dict it refuses a field it does not declare:
a misspelt key is an error, not a silent new column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class RenderStatus(StrEnum):
    """What `rendered_clips` did with a clip (str-valued: stored and compared as the plain strings)."""

    RENDERED = "rendered"
    CACHE_HIT = "cache_hit"
    DUPLICATE = "duplicate"  # same spec as an earlier clip of the same shard: rendered once
    DEAD_LETTER = "dead_letter"  # non-finite latents or a permanent error: stopped, not rendered again
    QUARANTINED = "quarantined"  # blocked by the frame scan in an earlier attempt: terminal, never rendered again


@dataclass
class ClipRecord:
    """One clip of a shard. Field groups follow the stage that sets them; None: that stage has not (or did not)."""

    # validation (core/validation.AcceptedRow)
    row: int
    clip_id: str
    tier: str
    spec: dict[str, Any]
    source_id: str | None = None
    complexity: str = "medium"
    seed_derived: bool = False
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    shot: dict[str, Any] | None = None
    # triage (rendered_clips)
    cache_key: str = ""
    render_status: RenderStatus | None = None
    gpu_seconds: float = 0.0  # billed in this shard: the sum of every render attempt's spend
    billable: bool | None = None  # for a dead letter or quarantined clip: was its spend this shard's
    own_publish: bool | None = None  # a cache hit of this shard's own render stored before its ledger row
    store_sha256: str | None = None  # cache hit: the store object reused
    duplicate_of: str | None = None
    reused_attempt: bool | None = None  # rendered by an earlier attempt of this step, reused from work/
    nan_step: int | None = None
    dead_letter_reason: str | None = None
    dead_letter_recorded_at: Any = None
    dead_letter_from: str | None = None
    retryable: bool | None = None
    quarantined_from: str | None = None
    # render (defs/generation.render_record)
    work_path: str | None = None
    mp4_sha256: str | None = None
    attempt_gpu_seconds: float | None = None
    steps_run: int | None = None
    steps_computed: int | None = None
    resumed_from_step: int | None = None
    device: str | None = None
    render_started_at: str | None = None
    non_finite_frames: list[int] | None = None
    frames_sha256: str | None = None
    step_seconds: list[float] | None = None
    step_seconds_mean: float | None = None
    decode_seconds: float | None = None
    batch_size: int | None = None
    checkpoints_written: int | None = None
    conditioning_sha256: str | None = None
    # frame scan (screened_clips)
    scan_verdict: str | None = None
    scan_reasons: list[str] | None = None
    frames_scanned: int | None = None
    policy_version: str | None = None
    quarantine_path: str | None = None
    # signing (signed_clips)
    signed_path: str | None = None
    c2pa_state: str | None = None
    withheld_reason: str | None = None
    # publishing (published_clips)
    sha256: str | None = None
    store_path: str | None = None
    stored_bytes: int | None = None
    final_status: str | None = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ClipRecord:
        unknown = set(values) - FIELD_NAMES
        if unknown:
            raise KeyError(f"not a clip record field: {', '.join(sorted(unknown))}")
        record = cls(**values)
        if record.render_status is not None:
            record.render_status = RenderStatus(record.render_status)
        return record

    @classmethod
    def coerce(cls, clips: Iterable[ClipRecord | Mapping[str, Any]]) -> list[ClipRecord]:
        """Records from an upstream output, which an older run may have pickled as dicts."""
        return [c if isinstance(c, ClipRecord) else cls.from_dict(c) for c in clips]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # the mapping calls of the dict era: typed, so an undeclared key raises
    def __getitem__(self, name: str) -> Any:
        if name not in FIELD_NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __contains__(self, name: object) -> bool:
        return name in FIELD_NAMES and getattr(self, str(name)) is not None

    def get(self, name: str, default: Any = None) -> Any:
        if name not in FIELD_NAMES:
            raise KeyError(f"not a clip record field: {name}")
        value = getattr(self, name)
        return default if value is None else value

    def keys(self) -> Iterator[str]:
        return iter(FIELD_NAMES_ORDERED)

    def update(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        changes = {**(values or {}), **more}
        unknown = set(changes) - FIELD_NAMES
        if unknown:
            raise KeyError(f"not a clip record field: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self, name, RenderStatus(value) if name == "render_status" and value is not None else value)


FIELD_NAMES_ORDERED = tuple(f.name for f in fields(ClipRecord))
FIELD_NAMES = frozenset(FIELD_NAMES_ORDERED)
