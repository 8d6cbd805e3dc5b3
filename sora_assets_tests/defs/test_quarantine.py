"""Issue 19 (2): a clip the frame scan blocked is a terminal, remembered outcome.

No later attempt renders it again, its spend stays in the books once, and screening can be re-executed
from failure any number of times.
"""

import pytest
from dagster import AssetKey, materialize

from sora_assets.core.storage.home import Home
from sora_assets.resources.home import default_resources
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.services.runner import run_shards
from sora_assets_tests.conftest import registered_batch

pytestmark = pytest.mark.slow


class BlockEverything(FrameSafetyResource):
    """Test double for the detector's judgement: every clip is blocked."""

    def scan(self, frames, non_finite=None, prompt=""):
        verdict = super().scan(frames, non_finite, prompt)
        verdict.verdict, verdict.reasons = "block", ["test:forced-block"]
        return verdict


class BlockThenCrash(BlockEverything):
    """Blocks the first clip it scans, then raises: the step fails after the first clip was quarantined."""

    def scan(self, frames, non_finite=None, prompt=""):
        verdict = super().scan(frames, non_finite, prompt)
        if CRASHES["scans"] >= 1:
            raise RuntimeError("scanner crashed")
        CRASHES["scans"] += 1
        return verdict


CRASHES = {"scans": 0}


def warehouse(home: Home) -> ParquetWarehouse:
    return ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))


def render_metadata(instance, key: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey("rendered_clips"))
    assert event.asset_materialization.partition == key
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_a_blocked_clip_is_never_rendered_again_and_its_spend_stays_booked_once(home_with_model: Home) -> None:
    home = home_with_model
    instance, keys = registered_batch(home, "two.jsonl")
    blocker = {"frame_safety": BlockEverything()}
    assert all(o.success for o in run_shards(home, instance, keys, resource_overrides=blocker))
    first = warehouse(home).query("SELECT clip_id, gpu_seconds FROM cost_ledger ORDER BY clip_id")
    assert len(first) == 2 and (first.gpu_seconds > 0).all()

    # re-materialisation (as a retry or backfill would) with a scanner that would now pass them
    assert all(o.success for o in run_shards(home, instance, keys))
    meta = render_metadata(instance, keys[0])
    assert meta["rendered"] == 0 and meta["gpu_seconds"] == 0  # not rendered again
    ledger = warehouse(home).query("SELECT clip_id, gpu_seconds FROM cost_ledger ORDER BY clip_id")
    assert list(ledger.gpu_seconds) == pytest.approx(list(first.gpu_seconds))  # every second kept, none twice
    remembered = warehouse(home).query("SELECT clip_id, gpu_seconds FROM quarantined_clips ORDER BY clip_id")
    assert list(remembered.clip_id) == list(first.clip_id) and meta["quarantined_earlier"] == 2
    assert list(remembered.gpu_seconds) == pytest.approx(list(first.gpu_seconds))
    clips = warehouse(home).query("SELECT status, scan_verdict, sha256 FROM clips")
    assert set(clips.status) == {"blocked"} and set(clips.scan_verdict) == {"block"} and clips.sha256.isna().all()
    assert not list(home.store.glob("*/*.mp4"))  # never published
    records = warehouse(home).query("SELECT count(*) AS n FROM safety_events WHERE check_name = 'frame_scan' "
                                    "AND action = 'block'")
    assert int(records.n[0]) == 2  # the blocking scan's records are carried, not lost nor duplicated


def test_screening_can_be_re_executed_from_failure_any_number_of_times(home_with_model: Home) -> None:
    from sora_assets.defs.generation import rendered_clips
    from sora_assets.defs.intake import prompt_shards
    from sora_assets.defs.screening import screened_clips
    from sora_assets.defs.validation import validated_prompts

    home = home_with_model
    instance, keys = registered_batch(home, "two.jsonl")
    assets = [prompt_shards, validated_prompts, rendered_clips, screened_clips]
    resources = default_resources(home)
    rendered = materialize(assets, partition_key=keys[0], instance=instance, resources=resources,
                           selection=[prompt_shards, validated_prompts, rendered_clips])
    assert rendered.success
    CRASHES["scans"] = 0
    for _ in range(2):  # the scan blocks one clip, then crashes: twice, from the same rendered output
        CRASHES["scans"] = 0
        crashed = materialize(assets, partition_key=keys[0], instance=instance, selection=[screened_clips],
                              resources={**resources, "frame_safety": BlockThenCrash()}, raise_on_error=False)
        assert not crashed.success
        assert "scanner crashed" in str([e.event_specific_data.error.to_string() for e in crashed.all_events
                                         if e.is_step_failure])
    again = materialize(assets, partition_key=keys[0], instance=instance, selection=[screened_clips],
                        resources={**resources, "frame_safety": BlockEverything()})
    assert again.success
    output = again.output_for_node("screened_clips")
    assert [c["scan_verdict"] for c in output] == ["block", "block"]
    assert len(list((home.quarantine / keys[0]).glob("*.mp4"))) == 2
