"""Fleet sizing: how many GPUs render N clips by a deadline, and what a night costs.

A back-of-envelope on the project's own cost model: seconds per clip from the step-cost estimate
(history or the documented prior), GPU-hours priced by the time-of-use curve hour by hour, plus the
overhead the ledger charges, compared with the hosted-API list price of the same clips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sora_assets.core.planning.cost import DEFAULT_OVERHEAD, PriceCurve, api_equivalent_usd
from sora_assets.core.planning.estimates import StepCostModel


@dataclass(frozen=True)
class FleetPlan:
    clips: int
    renders: int  # clips that miss the cache
    seconds_per_clip: float
    gpu_hours: float
    window_hours: float
    gpus: int
    cost_usd: float
    api_equivalent_usd: float

    @property
    def cost_per_clip_usd(self) -> float:
        return self.cost_usd / self.clips if self.clips else 0.0


def gpus_needed(gpu_hours: float, window_hours: float, utilisation: float = 0.85) -> int:
    """GPUs that finish `gpu_hours` of work inside the window, each busy `utilisation` of the time
    (model load, queueing and retries take the rest)."""
    if window_hours <= 0 or not 0 < utilisation <= 1:
        raise ValueError("the window must be positive and utilisation in (0, 1]")
    return max(0, math.ceil(gpu_hours / (window_hours * utilisation) - 1e-9))


def plan_fleet(clips: int, *, width: int, height: int, frames: int, fps: int, steps: int, start: datetime,
               deadline: datetime, model: str = "Wan2.1-T2V-1.3B", history: StepCostModel | None = None,
               curve: PriceCurve | None = None, cache_hit_rate: float = 0.0, utilisation: float = 0.85,
               overhead: float = DEFAULT_OVERHEAD) -> FleetPlan:
    """GPUs and cost to render `clips` clips of one shape between `start` and `deadline`.

    The fleet runs the whole window in parallel, so each hour's price weighs equally; cache hits cost nothing.
    """
    window_hours = (deadline - start).total_seconds() / 3600
    renders = round(clips * (1 - cache_hit_rate))
    seconds, _ = (history or StepCostModel()).clip_seconds(
        {"model_id": model, "width": width, "height": height, "num_frames": frames, "steps": steps})
    gpu_hours = renders * seconds / 3600
    gpus = gpus_needed(gpu_hours, window_hours, utilisation)
    prices = (curve or PriceCurve()).price_at
    hours = max(1, math.ceil(window_hours))
    mean_price = sum(prices(start + timedelta(hours=h)) for h in range(hours)) / hours
    api = clips * api_equivalent_usd(width, height, frames / fps)
    return FleetPlan(clips=clips, renders=renders, seconds_per_clip=seconds, gpu_hours=gpu_hours,
                     window_hours=window_hours, gpus=gpus, cost_usd=gpu_hours * mean_price * (1 + overhead),
                     api_equivalent_usd=api)
