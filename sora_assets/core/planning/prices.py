"""Price curves and GPU capacity from CSV files under <home>/prices/.

Two shapes are read, so a studio can drop in what its provider gives it:
- `hour,usd_per_gpu_hour` — 24 rows: a time-of-use curve by local hour of day;
- `start,usd_per_gpu_hour[,gpus]` — dated hourly prices (a spot forecast) and, optionally, the GPUs
  available in that hour. Dated rows override the curve for their hour.
Files are read in name order; a later file overrides an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sora_assets.core.planning.cost import PriceCurve, _default_hourly_prices, window_start


class PriceFileError(ValueError):
    """A price file is unusable; the message names the file and the problem."""


@dataclass
class PriceSettings:
    curve: PriceCurve
    capacity: dict[datetime, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for a bad CSV
        raise PriceFileError(f"{path.name}: not a readable CSV ({type(exc).__name__}: {exc})") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if "usd_per_gpu_hour" not in frame.columns or not ({"hour", "start"} & set(frame.columns)):
        raise PriceFileError(f"{path.name}: expected columns hour,usd_per_gpu_hour or start,usd_per_gpu_hour[,gpus]")
    prices = pd.to_numeric(frame["usd_per_gpu_hour"], errors="coerce")
    if prices.isna().any() or (prices < 0).any():
        raise PriceFileError(f"{path.name}: usd_per_gpu_hour must be non-negative numbers")
    return frame


def load_prices(prices_dir: Path, timezone: str) -> PriceSettings:
    hourly = _default_hourly_prices()
    dated: dict[datetime, float] = {}
    capacity: dict[datetime, int] = {}
    sources: list[str] = []
    for path in sorted(prices_dir.glob("*.csv")) if prices_dir.is_dir() else []:
        frame = _read(path)
        sources.append(path.name)
        if "hour" in frame.columns:
            hours = pd.to_numeric(frame["hour"], errors="coerce")
            if hours.isna().any() or sorted(hours.astype(int)) != list(range(24)):
                raise PriceFileError(f"{path.name}: a time-of-use curve has one row per hour 0-23")
            for hour, price in zip(hours.astype(int), frame["usd_per_gpu_hour"], strict=True):
                hourly[hour] = float(price)
            continue
        starts = pd.to_datetime(frame["start"], errors="coerce", utc=True)
        if starts.isna().any():
            raise PriceFileError(f"{path.name}: start must be ISO 8601 date-times")
        gpus = pd.to_numeric(frame["gpus"], errors="coerce") if "gpus" in frame.columns else None
        if gpus is not None and (gpus.isna().any() or (gpus < 1).any()):
            raise PriceFileError(f"{path.name}: gpus must be whole numbers >= 1")
        for i, start in enumerate(starts):
            hour = window_start(start.to_pydatetime().astimezone(UTC))
            dated[hour] = float(frame["usd_per_gpu_hour"].iloc[i])
            if gpus is not None:
                capacity[hour] = int(gpus.iloc[i])
    return PriceSettings(PriceCurve(hourly=hourly, timezone=timezone, dated=dated), capacity, sources)
