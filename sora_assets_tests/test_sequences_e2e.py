"""A shot group end to end: anchor, image-to-video shot, continuation, stitched and signed sequence."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.render.video_io import decode_mp4, probe_mp4
from sora_assets.core.storage.fsutil import sha256_file
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.signer import C2paSignerResource
from sora_assets.resources.warehouse import ParquetWarehouse

pytestmark = pytest.mark.slow
HARBOUR = "a quiet harbour at dawn"
ROWS = [
    {"prompt": HARBOUR, "shot_group": "harbour", "anchor": True, "shot": 1, "steps": 3, "seed": 11},
    {"prompt": f"Slow pan left. {HARBOUR}", "shot_group": "harbour", "shot": 2, "steps": 3, "image": "boat.png"},
    {"prompt": f"Dolly in. {HARBOUR}", "shot_group": "harbour", "shot": 3, "steps": 3, "continue_from": "previous"},
    {"prompt": "a lighthouse in fog", "steps": 3},
]


class BlockSlowPan(FrameSafetyResource):
    """Test double for the detector's judgement: the rendered shot whose prompt says "slow pan" is blocked
    (its input image, a single frame, still passes)."""

    def scan(self, frames, non_finite=None, prompt=""):
        verdict = super().scan(frames, non_finite, prompt)
        if "Slow pan" in prompt and len(frames) > 1:
            verdict.verdict, verdict.reasons = "block", ["test:forced-block"]
        return verdict


def _submit(home):
    from sora_assets_tests.conftest import registered_batch

    home.inputs.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                              np.full((64, 64), 90, np.uint8)], axis=-1)).save(home.inputs / "boat.png")
    return registered_batch(home, "harbour.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS))


def _warehouse(home) -> ParquetWarehouse:
    return ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))


def _store_record(home, sha256: str) -> dict:
    return json.loads((home.store / sha256[:2] / f"{sha256}.json").read_text())


def test_a_shot_group_renders_in_order_and_is_cut_into_one_trusted_sequence(home_with_model) -> None:
    from sora_assets.services.runner import run_shards

    home = home_with_model
    instance, keys = _submit(home)
    (outcome,) = run_shards(home, instance, keys)
    assert outcome.success, outcome.error
    warehouse = _warehouse(home)
    signer = C2paSignerResource(keys_dir=str(home.keys))

    clips = warehouse.query("SELECT row, status, model, seed, sha256 FROM clips ORDER BY row")
    assert list(clips.status) == ["published"] * 4
    assert list(clips.model) == ["tiny-wan", "tiny-wan-i2v", "tiny-wan-i2v", "tiny-wan"]
    assert list(clips.seed[:3]) == [11, 11, 11]  # shots reuse the anchor's seed
    anchor, shot2, shot3 = (_store_record(home, sha) for sha in clips.sha256[:3])

    # image-to-video: the input file's bytes are in the spec, and the image is a C2PA ingredient
    assert shot2["conditioning"] == f"image:{sha256_file(home.inputs / 'boat.png')}"
    shot2_manifest = signer.verify(home.store / clips.sha256[1][:2] / f"{clips.sha256[1]}.mp4")
    assert shot2_manifest.trusted and shot2_manifest.generation["conditioning"] == shot2["conditioning"]
    assert [(i["title"], i["relationship"], i["format"]) for i in shot2_manifest.ingredients] == [
        ("input boat.png", "inputTo", "image/png")]

    # continuation: shot 3 was conditioned on the last frame of shot 2's published video
    assert shot3["conditioning"] == f"last_frame:{GenerationSpec.from_dict(shot2['spec']).cache_key()}"
    last_frame = decode_mp4(home.store / clips.sha256[1][:2] / f"{clips.sha256[1]}.mp4")[-1]
    assert shot3["conditioning_sha256"] == hashlib.sha256(np.ascontiguousarray(last_frame).tobytes()).hexdigest()
    shot3_manifest = signer.verify(home.store / clips.sha256[2][:2] / f"{clips.sha256[2]}.mp4")
    assert shot3_manifest.trusted and [i["relationship"] for i in shot3_manifest.ingredients] == ["inputTo"]
    assert shot3_manifest.ingredients[0]["manifest"]  # the source shot's own manifest travelled along
    assert anchor.get("conditioning") is None

    edl = warehouse.query("SELECT shot_id, camera_action, reference, duration_s FROM edit_decisions ORDER BY shot")
    assert list(edl.shot_id) == ["harbour/01", "harbour/02", "harbour/03"]
    assert list(edl.camera_action) == ["(anchor framing)", "Slow pan left", "Dolly in"]
    assert list(edl.reference) == ["text prompt only", "shot 1 seed + environment + image boat.png",
                                   "shot 1 seed + environment + last frame of shot 2"]
    assert list(edl.duration_s) == [9 / 8] * 3

    (sequence,) = warehouse.query("SELECT * FROM sequences").to_dict(orient="records")
    assert sequence["status"] == "stitched" and sequence["shots"] == 3
    assert sequence["crossfade_frames"] == 2 and sequence["frames"] == 3 * 9 - 2 * 2
    assert sequence["duration_s"] == pytest.approx(23 / 8)
    video = home.store / sequence["sha256"][:2] / f"{sequence['sha256']}.mp4"
    assert decode_mp4(video).shape[0] == 23 and probe_mp4(video)["fps"] == 8
    verification = signer.verify(video)
    assert verification.trusted and verification.sequence["shots"] == sequence["shot_clip_ids"].split(",")
    assert [(i["title"], i["relationship"]) for i in verification.ingredients] == [
        (f"{clip_id}.mp4", "componentOf") for clip_id in sequence["shot_clip_ids"].split(",")]
    assert all(i["manifest"] for i in verification.ingredients)
    checks = _check_results(instance)
    assert checks["stitched_sequences_are_trusted"] is True

    (again,) = run_shards(home, instance, keys)  # everything is a cache hit now, the cut included
    assert again.success, again.error
    rows = warehouse.query("SELECT status, sha256 FROM sequences").to_dict(orient="records")
    assert rows == [{"status": "cached", "sha256": sequence["sha256"]}]


def test_a_blocked_shot_withholds_its_continuation_and_leaves_the_sequence_incomplete(home_with_model) -> None:
    from sora_assets.services.runner import run_shards

    home = home_with_model
    instance, keys = _submit(home)
    (outcome,) = run_shards(home, instance, keys, resource_overrides={"frame_safety": BlockSlowPan()})
    assert outcome.success, outcome.error
    warehouse = _warehouse(home)
    clips = warehouse.query("SELECT row, status FROM clips ORDER BY row")
    assert list(clips.status) == ["published", "blocked", "withheld", "published"]
    (sequence,) = warehouse.query("SELECT status, missing, sha256 FROM sequences").to_dict(orient="records")
    assert sequence["status"] == "incomplete" and sequence["sha256"] is None
    assert "r00002 (blocked)" in sequence["missing"] and "r00003 (withheld)" in sequence["missing"]


def _check_results(instance) -> dict[str, bool]:
    latest_run = instance.get_runs()[0].run_id
    evaluations = [r.event_log_entry.dagster_event.event_specific_data
                   for r in instance.get_records_for_run(latest_run).records
                   if r.event_log_entry.dagster_event is not None
                   and r.event_log_entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    return {e.check_name: e.passed for e in evaluations}
