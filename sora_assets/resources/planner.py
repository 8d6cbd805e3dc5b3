"""The planner's settings: GPU count, time zone, grid, solver limits and how runs are launched."""

from __future__ import annotations

import os
from typing import Literal
from zoneinfo import ZoneInfo

from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.planning.prices import PriceSettings, load_prices
from sora_assets.core.storage.home import Home


class PlannerResource(ConfigurableResource):
    gpus: int = Field(default=1, ge=1, description="GPUs per window (the `gpu` pool limit); CSV capacity overrides.")
    timezone: str = Field(default="UTC", description="The studio's time zone: default deadlines and peak hours.")
    step_minutes: int = Field(default=15, description="Plan grid: shards start on multiples of this.")
    time_limit_s: float | None = Field(default=10.0, description="HiGHS wall-clock limit (None: none); the greedy "
                                                                 "plan is kept if better.")
    node_limit: int | None = Field(default=None, description="HiGHS branch-and-bound node limit: a bound that stops "
                                                             "at the same point on every machine.")
    exact_max_shards: int = Field(default=2000, description="Above this many pending shards, plan greedily.")
    launch_mode: Literal["now", "planned"] = Field(
        default="now", description="now: the inbox sensor renders shards at once; planned: the window sensor "
                                   "launches each shard when its planned start arrives.")
    overhead: float = Field(default=0.30, description="Cost overhead on GPU time (as in the ledger).")
    free_share_cap: int = Field(default=3, ge=1, description="Fair share: most free-tier shards of one account "
                                                             "in progress at once (planned and launched); paid is "
                                                             "uncapped.")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def prices(self, home: Home) -> PriceSettings:
        return load_prices(home.prices, self.timezone)


def planner_settings_from_env(environ: dict[str, str] | os._Environ) -> dict[str, object]:
    """SORA_ASSETS_GPUS, SORA_ASSETS_TZ, SORA_ASSETS_LAUNCH (now|planned), SORA_ASSETS_FREE_SHARE_CAP."""
    settings: dict[str, object] = {}
    if environ.get("SORA_ASSETS_GPUS"):
        settings["gpus"] = int(environ["SORA_ASSETS_GPUS"])
    if environ.get("SORA_ASSETS_TZ"):
        settings["timezone"] = environ["SORA_ASSETS_TZ"]
    if environ.get("SORA_ASSETS_LAUNCH"):
        settings["launch_mode"] = environ["SORA_ASSETS_LAUNCH"]
    if environ.get("SORA_ASSETS_FREE_SHARE_CAP"):
        settings["free_share_cap"] = int(environ["SORA_ASSETS_FREE_SHARE_CAP"])
    return settings
