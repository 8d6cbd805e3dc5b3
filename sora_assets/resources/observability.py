"""Alarm thresholds, the alert webhook and the SLO window: one resource, defaults from the environment."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.ops.alarms import Thresholds

DEFAULTS = Thresholds()


class ObservabilityResource(ConfigurableResource):
    webhook_url: str = Field(default="", description="POST each firing/resolved alert as JSON here "
                                                     "(SORA_ASSETS_ALERT_WEBHOOK); empty = rows only.")
    webhook_timeout_s: float = Field(default=5.0, description="A slow webhook never blocks a tick for longer.")
    runbook_url: str = Field(default="docs/RUNBOOK.md", description="Base of the runbook links in alerts "
                                                                   "(SORA_ASSETS_RUNBOOK_URL).")
    slo_window_hours: float = Field(default=24.0, description="SLO snapshots cover shards and clips of this window.")
    clock: str = Field(default="", description="ISO 8601 time to evaluate at (tests, drills); empty = wall clock.")
    nan_rate: float = Field(default=DEFAULTS.nan_rate, description="NaN aborts / active clips above this fire.")
    nan_window_s: float = Field(default=DEFAULTS.nan_window_s, description="Active clips: recorded this recently.")
    paid_queue_wait_p95_s: float = Field(default=DEFAULTS.paid_queue_wait_p95_s,
                                         description="Paid-tier p95 queue wait limit (s).")
    queue_window_s: float = Field(default=DEFAULTS.queue_window_s, description="Queue waits of shards started "
                                                                               "this recently (or still waiting).")
    min_slack_s: float = Field(default=DEFAULTS.min_slack_s, description="Projected deadline slack below this fires.")
    block_jump_factor: float = Field(default=DEFAULTS.block_jump_factor, description="Recent block rate above "
                                                                                     "factor × baseline ...")
    block_jump_points: float = Field(default=DEFAULTS.block_jump_points, description="... and above baseline + "
                                                                                     "this (0.02 = 2 points).")
    block_min_samples: int = Field(default=DEFAULTS.block_min_samples, description="Scanned clips needed recently.")
    block_recent_s: float = Field(default=DEFAULTS.block_recent_s, description="Recent window (s).")
    block_baseline_s: float = Field(default=DEFAULTS.block_baseline_s, description="Trailing baseline window (s).")
    worker_failures: int = Field(default=DEFAULTS.worker_failures, description="Failures on one worker that fire.")
    worker_window_s: float = Field(default=DEFAULTS.worker_window_s, description="... within this window (s).")

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(**{name: getattr(self, name) for name in Thresholds.__dataclass_fields__})

    def now(self) -> datetime:
        return datetime.fromisoformat(self.clock) if self.clock else datetime.now(UTC)


def observability_settings_from_env(environ: dict[str, str] | os._Environ) -> dict[str, object]:
    """SORA_ASSETS_ALERT_WEBHOOK, SORA_ASSETS_RUNBOOK_URL."""
    settings: dict[str, object] = {}
    if environ.get("SORA_ASSETS_ALERT_WEBHOOK"):
        settings["webhook_url"] = environ["SORA_ASSETS_ALERT_WEBHOOK"]
    if environ.get("SORA_ASSETS_RUNBOOK_URL"):
        settings["runbook_url"] = environ["SORA_ASSETS_RUNBOOK_URL"]
    return settings
