"""Presets through the whole shard: chosen per tier and per row, rendered, signed and booked under their name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_assets.core.storage.home import Home
from sora_assets.resources.signer import C2paSignerResource
from sora_assets.services.runner import run_shards
from sora_assets_tests.defs.test_generation import submit, warehouse

pytestmark = pytest.mark.slow

ROWS = [  # one tier, so one shard (one Dagster run); the paid tier's exact default is a unit test
    {"prompt": "a red fox running through a forest", "tier": "free", "steps": 12, "seed": 5, "id": "tier-default"},
    {"prompt": "a red fox running through a forest", "tier": "free", "steps": 12, "seed": 5, "preset": "exact",
     "id": "row-exact"},
    {"prompt": "a red fox running through a forest", "tier": "free", "steps": 12, "seed": 5, "preset": "Fastest",
     "id": "row-fastest"},
]

def test_presets_per_tier_and_row_reach_the_ledger_and_the_c2pa_assertion(home_with_model: Home,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORA_ASSETS_TIER_PRESETS", "free=fast")
    home = home_with_model
    instance, keys = submit(home, ROWS)
    outcomes = run_shards(home, instance, keys)
    assert all(o.success for o in outcomes), [o.error for o in outcomes]

    store = warehouse(home)
    clips = store.query("SELECT source_id, preset, cache_key, frames_sha256, store_path FROM clips ORDER BY row")
    assert list(clips.preset) == ["fast", "exact", "fastest"]
    assert clips.cache_key.nunique() == 3  # same prompt and seed, different preset: different clips
    assert clips.frames_sha256.nunique() == 3
    ledger = store.query("SELECT clip_id, preset, cache_hit, gpu_seconds FROM cost_ledger ORDER BY clip_id")
    assert sorted(ledger.preset) == ["exact", "fast", "fastest"]
    assert not ledger.cache_hit.any() and (ledger.gpu_seconds > 0).all()

    signer = C2paSignerResource(keys_dir=str(home.keys))
    for row in clips.itertuples():
        verification = signer.verify(Path(row.store_path))
        assert verification.trusted
        assert verification.generation["preset"] == row.preset
        assert verification.generation["cache_key"] == row.cache_key
