"""The typed clip record: its statuses keep their stored strings, and the warehouse rows built from it match
the `clips` and `cost_ledger` Parquet schemas column for column."""

import json
import pickle

import pyarrow as pa
import pytest

from sora_assets.core.planning.cost import PriceCurve
from sora_assets.core.render.clip_record import FIELD_NAMES, ClipRecord, RenderStatus
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.warehouse.ledger import (
    CACHE_HIT,
    DEAD_LETTER,
    DUPLICATE,
    QUARANTINED,
    RENDERED,
    clip_row,
    ledger_row,
)
from sora_assets.core.warehouse.schema import TABLES

SPEC = GenerationSpec(prompt="a red fox", negative_prompt="", scheduler="unipc", seed=5, width=64, height=64,
                      num_frames=9, fps=8, steps=4, guidance_scale=5.0, model_id="tiny-wan",
                      model_revision="abc").to_dict()
SHARD_COLUMNS = {"partition_key", "batch_id", "recorded_at"}
SPEC_COLUMNS = {"model", "model_revision", "seed", "width", "height", "num_frames", "fps", "duration_s",
                "prompt_sha256", "preset", "model_family"}
RENAMED = {"status": "final_status", "steps": "steps_run"}  # clips column -> record field


def published() -> ClipRecord:
    clip = ClipRecord.from_dict({"row": 1, "clip_id": "b-r1", "tier": "paid", "spec": SPEC, "source_id": "s1",
                                 "warnings": ["w"], "cache_key": "k1"})
    clip.update(render_status="rendered", gpu_seconds=1.25, steps_run=4, resumed_from_step=0, device="cpu",
                frames_sha256="f" * 64, step_seconds_mean=0.2, render_started_at="2026-12-01T10:00:00+00:00",
                scan_verdict="pass", c2pa_state="Trusted", sha256="a" * 64, store_path="/s/a.mp4", stored_bytes=100,
                final_status="published")
    return clip


def test_statuses_are_the_strings_stored_before_the_enum() -> None:
    assert [RENDERED, CACHE_HIT, DUPLICATE, DEAD_LETTER, QUARANTINED] == \
        ["rendered", "cache_hit", "duplicate", "dead_letter", "quarantined"]
    assert json.dumps({"s": RenderStatus.RENDERED}) == '{"s": "rendered"}'
    assert f"{RenderStatus.DEAD_LETTER}" == "dead_letter"


def test_clips_columns_are_record_fields_or_come_from_its_spec_or_shard() -> None:
    columns = set(TABLES["clips"].names)
    from_record = columns - SHARD_COLUMNS - SPEC_COLUMNS - set(RENAMED)
    assert from_record <= FIELD_NAMES, from_record - FIELD_NAMES
    assert set(RENAMED.values()) <= FIELD_NAMES
    row = clip_row(published(), "b-s1", "b")
    assert list(row) == TABLES["clips"].names  # the builder writes exactly the schema's columns, in order
    table = pa.Table.from_pylist([row], schema=TABLES["clips"])  # and every value fits its column's type
    assert table.column("status").to_pylist() == ["published"] and table.column("gpu_seconds")[0].as_py() == 1.25


def test_ledger_row_matches_the_cost_ledger_schema() -> None:
    row = ledger_row(published(), "b-s1", "b", PriceCurve(), {})
    assert set(row) == set(TABLES["cost_ledger"].names)  # the writer orders columns by the schema
    table = pa.Table.from_pylist([row], schema=TABLES["cost_ledger"])
    assert table.column("gpu_seconds")[0].as_py() == 1.25 and table.column("cache_hit")[0].as_py() is False


def test_an_undeclared_field_is_an_error_not_a_new_column() -> None:
    clip = published()
    with pytest.raises(KeyError, match="render_stauts"):
        clip.update(render_stauts="rendered")
    with pytest.raises(KeyError):
        clip["gpu_secs"]
    with pytest.raises(KeyError):
        ClipRecord.from_dict({**clip.to_dict(), "extra": 1})


def test_a_record_pickles_and_an_older_runs_dict_output_still_loads() -> None:
    clip = published()
    assert pickle.loads(pickle.dumps(clip)) == clip  # the filesystem IO manager pickles asset outputs
    (again,) = ClipRecord.coerce([clip.to_dict()])
    assert again == clip and again.render_status is RenderStatus.RENDERED
    assert dict(**clip)["final_status"] == "published"  # `**clip` spreads like the dict it replaced


def test_shard_assets_accept_records_and_an_older_runs_dicts_as_input() -> None:
    from sora_assets.defs.clip_io import CLIP_RECORDS
    from sora_assets.defs.publishing import published_clips
    from sora_assets.defs.screening import screened_clips
    from sora_assets.defs.sequences import sequences
    from sora_assets.defs.signing import signed_clips

    for asset, upstream in ((screened_clips, "rendered_clips"), (signed_clips, "screened_clips"),
                            (published_clips, "signed_clips"), (sequences, "published_clips")):
        assert asset.op.ins[upstream].dagster_type is CLIP_RECORDS
    assert CLIP_RECORDS.type_check(None, [published(), published().to_dict()]).success
    assert not CLIP_RECORDS.type_check(None, [published(), "not a clip"]).success
