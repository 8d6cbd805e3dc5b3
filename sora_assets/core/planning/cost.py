"""Cost model: what a clip cost on our GPUs, and what it would have cost on a hosted API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

DEFAULT_OVERHEAD = 0.30
PEAK_PRICE_PER_GPU_HOUR = 3.50
OFF_PEAK_DISCOUNT = 0.20
# Hosted-API list price per 10 s clip by resolution class (product brief).
API_PRICE_PER_10S = {"720p": Decimal("0.15"), "1080p": Decimal("0.20"), "4k": Decimal("0.25")}
COMPLEXITY_FACTOR = {"simple": Decimal("0.9"), "medium": Decimal("1.0"), "complex": Decimal("1.3"),
                     "extreme": Decimal("1.6")}
PRIORITY_FACTOR = Decimal("1.75")


def _default_hourly_prices() -> list[float]:
    """Time-of-use curve: peak 08:00-22:00, off-peak about 20% cheaper."""
    off_peak = round(PEAK_PRICE_PER_GPU_HOUR * (1 - OFF_PEAK_DISCOUNT), 4)
    return [PEAK_PRICE_PER_GPU_HOUR if 8 <= hour < 22 else off_peak for hour in range(24)]


@dataclass(frozen=True)
class PriceCurve:
    """Hourly $/GPU-hour by hour of day in `timezone`, plus dated prices that override it.

    The time-of-use hours are the studio's local hours (peak 08:00-22:00 local); `dated` holds
    prices for specific UTC hour starts, e.g. a spot forecast from a CSV under <home>/prices/.
    """

    hourly: list[float] = field(default_factory=_default_hourly_prices)
    timezone: str = "UTC"
    dated: dict[datetime, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.hourly) != 24 or any(p < 0 for p in self.hourly):
            raise ValueError("a price curve has 24 non-negative hourly prices")
        if any(p < 0 for p in self.dated.values()):
            raise ValueError("prices are non-negative")
        ZoneInfo(self.timezone)  # an unknown zone fails here, not at the first lookup

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def price_at(self, when: datetime) -> float:
        aware = when if when.tzinfo else when.replace(tzinfo=UTC)
        hour_start = window_start(aware.astimezone(UTC))
        if hour_start in self.dated:
            return float(self.dated[hour_start])
        return float(self.hourly[aware.astimezone(self.zone).hour])


def window_start(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def gpu_cost_usd(gpu_seconds: float, price_per_gpu_hour: float, overhead: float = DEFAULT_OVERHEAD) -> float:
    return gpu_seconds / 3600.0 * price_per_gpu_hour * (1.0 + overhead)


STORAGE_USD_PER_GB_MONTH = 0.023  # object storage list price (S3 Standard, first 50 TB)
STORAGE_MONTHS = 1.0  # the ledger books one month of retention per published clip


def storage_cost_usd(size_bytes: int, months: float = STORAGE_MONTHS,
                     usd_per_gb_month: float = STORAGE_USD_PER_GB_MONTH) -> float:
    """Storage of one stored object for `months` (decimal GB, as storage is billed)."""
    return size_bytes / 1e9 * usd_per_gb_month * months


def resolution_class(width: int, height: int) -> str:
    short_side = min(width, height)
    if short_side <= 720:
        return "720p"
    if short_side <= 1080:
        return "1080p"
    return "4k"


def duration_factor(duration_s: float) -> Decimal:
    if duration_s <= 10:
        return Decimal("1.0")
    if duration_s <= 20:
        return Decimal("1.75")
    return Decimal("2.75")


def api_equivalent_usd(width: int, height: int, duration_s: float, complexity: str = "medium",
                       priority: bool = False) -> float:
    """Hosted-API list price for the same clip, rounded half-up to cents like a price sheet."""
    price = API_PRICE_PER_10S[resolution_class(width, height)] * duration_factor(duration_s) \
        * COMPLEXITY_FACTOR[complexity]
    if priority:
        price *= PRIORITY_FACTOR
    return float(price.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
