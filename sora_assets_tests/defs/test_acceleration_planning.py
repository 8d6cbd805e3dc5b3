"""The planner prices a preset's shard with the speed-up calibrated for the model revision, once there is one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sora_assets.core.intake.inbox import ingest_file
from sora_assets.core.render.acceleration import PRESETS, Calibration, now_iso, save_calibration
from sora_assets.core.storage.home import Home
from sora_assets.resources.home import default_resources
from sora_assets.services.planning import build_plan

pytestmark = pytest.mark.slow  # validation, the pre-filter and the model fingerprint, twice

ROWS = [{"prompt": "a free shot of a hill", "preset": "fast"}, {"prompt": "a free shot of a lake", "preset": "fast"},
        {"prompt": "a paid shot of the sea", "tier": "paid"}]


def test_build_plan_uses_the_calibrated_speedup_for_the_model_revision(home_with_model: Home) -> None:
    home = home_with_model
    source = home.inbox / "night.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    keys = ingest_file(home, source, shard_size=2).shard_keys
    resources = default_resources(home)
    args = (home, resources["planner"], resources["video_model"], resources["warehouse"], resources["store"],
            datetime(2026, 11, 21, 14, 0, tzinfo=UTC))

    def estimates() -> dict[str, tuple[float, list[str]]]:
        return {k: (e.gpu_seconds, sorted(e.sources)) for k, e in build_plan(*args).estimates.items()}

    before = estimates()
    assert sorted(before) == sorted(keys) and len(keys) == 2
    free_key = next(k for k, (_, sources) in before.items() if sources == ["prior+uncalibrated:fast"])
    paid_key = next(k for k in keys if k != free_key)
    profile = resources["video_model"].profile()
    save_calibration(home.calibration, Calibration(
        model_id=profile.model_id, model_revision=profile.revision, preset="fast",
        preset_fingerprint=PRESETS["fast"].fingerprint(), speedup=2.0, psnr_db=30.0, ssim=0.9, clips=4,
        exact_seconds_per_clip=1.0, preset_seconds_per_clip=0.5, device="cpu", width=64, height=64, num_frames=9,
        steps=30, measured_at=now_iso()))
    after = estimates()
    assert after[free_key][0] == pytest.approx(before[free_key][0] / 2.0)
    assert after[free_key][1] == ["prior+calibrated:fast"]
    assert after[paid_key] == before[paid_key]  # exact clips are priced as before
