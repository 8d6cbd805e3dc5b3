"""SLO arithmetic per tier: percentiles of shard timings and rates over clips, as chartable rows.

Inputs are plain DataFrames gathered from the Dagster instance and the warehouse (see
`sora_assets/services/observability.py`); nothing here reads a file or imports Dagster, so every figure can be
checked against hand-computed values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

NAN_REASON = "non_finite_latents"  # the dead-letter reason of a NaN abort (as written by rendered_clips)
SCAN_RECORD = "frame_scan"  # the per-clip summary row of the frame scan in safety_events


@dataclass(frozen=True)
class SloFigure:
    tier: str
    metric: str
    value: float | None
    samples: int
    dimension: str = ""

    def as_row(self) -> dict:
        return asdict(self)


def percentile(values: Sequence[float] | pd.Series, q: float) -> float | None:
    """The q-th percentile (linear interpolation, numpy's default); None for no samples."""
    array = np.asarray(pd.Series(values, dtype=float).dropna(), dtype=float)
    return float(np.percentile(array, q)) if len(array) else None


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _seconds(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later, utc=True) - pd.to_datetime(earlier, utc=True)).dt.total_seconds()


def shard_timing_figures(shards: pd.DataFrame) -> list[SloFigure]:
    """Queue wait (registered → render started), end to end (registered → published) and deadline slack
    at completion (deadline − published), per tier.

    `shards` columns: partition_key, tier, registered_at, started_at, published_at, deadline (times may be
    missing: a shard not started yet has no queue wait, one not published has no end-to-end time).
    """
    figures: list[SloFigure] = []
    if shards.empty:
        return figures
    frame = shards.assign(queue_wait_s=_seconds(shards["started_at"], shards["registered_at"]),
                          end_to_end_s=_seconds(shards["published_at"], shards["registered_at"]),
                          slack_s=_seconds(shards["deadline"], shards["published_at"]))
    for tier, group in frame.groupby("tier", sort=True):
        for column, metric in (("queue_wait_s", "queue_wait"), ("end_to_end_s", "end_to_end")):
            values = group[column].dropna()
            figures += [SloFigure(tier, f"{metric}_p50_s", percentile(values, 50), len(values)),
                        SloFigure(tier, f"{metric}_p95_s", percentile(values, 95), len(values))]
        slack = group["slack_s"].dropna()
        figures += [SloFigure(tier, "deadline_slack_min_s", float(slack.min()) if len(slack) else None, len(slack)),
                    SloFigure(tier, "deadline_slack_p50_s", percentile(slack, 50), len(slack)),
                    SloFigure(tier, "late_shard_rate", rate(int((slack < 0).sum()), len(slack)), len(slack))]
    return figures


def clip_rate_figures(clips: pd.DataFrame, dead_letters: pd.DataFrame, safety_events: pd.DataFrame,
                      ledger: pd.DataFrame) -> list[SloFigure]:
    """NaN-abort rate, post-filter block rate by category, cache hit rate and GPU-seconds per clip, per tier.

    - NaN-abort rate: NaN dead letters / clips that reached rendering (rows of `clips`).
    - Block rate of a category: scanned clips with a frame-scan `block` event of that check (nudity,
      black, noise, nan, frozen) / scanned clips (those with a `frame_scan` record).
    - Cache hit rate: clips with status `cache_hit` / clips.
    - GPU-seconds per clip: mean over rendered ledger rows (not cache hits, > 0 s), by model and size.
    """
    figures: list[SloFigure] = []
    tier_of = {(r.partition_key, r.clip_id): r.tier for r in clips.itertuples()}
    nan = dead_letters[dead_letters["reason"] == NAN_REASON] if not dead_letters.empty else dead_letters
    frame_events = safety_events[safety_events["stage"] == "frame"] if not safety_events.empty else safety_events
    if not frame_events.empty:
        frame_events = frame_events.assign(tier=[tier_of.get((p, c)) for p, c in
                                                 zip(frame_events["partition_key"], frame_events["clip_id"],
                                                     strict=True)])
    for tier in sorted(set(clips["tier"].dropna())):
        mine = clips[clips["tier"] == tier]
        total = len(mine)
        nan_count = int((nan["tier"] == tier).sum()) if not nan.empty else 0
        figures.append(SloFigure(tier, "nan_abort_rate", rate(nan_count, total), total))
        hits = int((mine["status"] == "cache_hit").sum())
        figures.append(SloFigure(tier, "cache_hit_rate", rate(hits, total), total))
        if not frame_events.empty:
            events = frame_events[frame_events["tier"] == tier]
            scanned = events.loc[events["check_name"] == SCAN_RECORD, ["partition_key", "clip_id"]].drop_duplicates()
            blocks = events[(events["check_name"] != SCAN_RECORD) & (events["action"] == "block")]
            for category, hits in blocks.groupby("check_name", sort=True):
                blocked = len(hits[["partition_key", "clip_id"]].drop_duplicates())
                figures.append(SloFigure(tier, "block_rate", rate(blocked, len(scanned)), len(scanned), category))
    if not ledger.empty:
        sizes = {(r.partition_key, r.clip_id): f"{r.width}x{r.height}x{r.num_frames}" for r in clips.itertuples()}
        rendered = ledger[~ledger["cache_hit"].astype(bool) & (ledger["gpu_seconds"] > 0)]
        rendered = rendered.assign(size=[sizes.get((p, c), "?") for p, c in
                                         zip(rendered["partition_key"], rendered["clip_id"], strict=True)])
        for (tier, model, size), group in rendered.groupby(["tier", "model", "size"], sort=True):
            figures.append(SloFigure(tier, "gpu_seconds_per_clip", float(group["gpu_seconds"].mean()), len(group),
                                     f"{model}@{size}"))
    return figures


def snapshot_rows(snapshot_id: str, computed_at: object, figures: Sequence[SloFigure]) -> list[dict]:
    """Rows for the `slo_snapshots` table."""
    return [{"snapshot_id": snapshot_id, "computed_at": computed_at, **f.as_row()} for f in figures]
