"""`sora-assets calibrate`: measured against exact on the configured model and stored per model revision."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sora_assets.cli import app
from sora_assets.core.render.acceleration import PRESETS, load_calibrations
from sora_assets.core.storage.home import Home
from sora_assets.resources.video_model import VideoModelResource


def test_calibrate_stores_speedup_and_fidelity_for_the_model_revision(home_with_model: Home) -> None:
    home = home_with_model
    args = ["calibrate", "--home", str(home.root), "--preset", "fastest", "--prompts", "1", "--steps", "6",
            "--format", "json"]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert not home.calibration.exists() or not list(home.calibration.iterdir())
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["rows"]
    revision = VideoModelResource(model_path=str(home.default_model_path)).profile().revision
    assert row["preset"] == "fastest" and row["revision"] == revision and row["clips"] == 1
    stored = load_calibrations(home.calibration)[("tiny-wan", revision, "fastest")]
    assert stored.speedup == row["speedup"] or abs(stored.speedup - row["speedup"]) < 1e-3
    assert stored.preset_fingerprint == PRESETS["fastest"].fingerprint()
    assert 0 < stored.ssim <= 1 and stored.psnr_db > 0 and stored.steps == 6


def test_calibrate_refuses_an_unknown_preset(home_with_model: Home) -> None:
    result = CliRunner().invoke(app, ["calibrate", "--home", str(home_with_model.root), "--preset", "warp9"])
    assert result.exit_code == 2 and "not one of" in result.output
