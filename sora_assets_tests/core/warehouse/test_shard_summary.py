import base64
from pathlib import Path

import pytest

from sora_assets.core.warehouse.shard_summary import (
    COST_COLUMNS,
    block_rate,
    cost_rows,
    cost_totals,
    embedded_image_markdown,
    store_object,
    unscanned_clips,
    untrusted_clips,
)


def test_block_rate_is_a_share_and_zero_when_nothing_was_considered() -> None:
    assert block_rate(1, 3) == 0.3333 and block_rate(0, 0) == 0.0 and block_rate(2, 2) == 1.0
    with pytest.raises(ValueError):
        block_rate(3, 2)


def test_scan_coverage_ignores_cache_hits_and_dead_letters_but_not_fresh_renders() -> None:
    clips = [{"clip_id": "a", "render_status": "rendered", "scan_verdict": "pass"},
             {"clip_id": "b", "render_status": "rendered"},
             {"clip_id": "c", "render_status": "duplicate", "scan_verdict": None},
             {"clip_id": "d", "render_status": "cache_hit"},
             {"clip_id": "e", "render_status": "dead_letter"}]
    assert unscanned_clips(clips) == ["b", "c"]


def test_only_trusted_signatures_pass() -> None:
    clips = [{"clip_id": "a", "c2pa_state": "Trusted"}, {"clip_id": "b", "c2pa_state": "Valid"}, {"clip_id": "c"}]
    assert untrusted_clips(clips) == ["b", "c"]


def test_cost_rows_follow_the_shard_order_with_zeros_for_clips_that_never_rendered(tmp_path: Path) -> None:
    store = tmp_path / "store"
    clips = [{"clip_id": "r2", "tier": "paid", "final_status": "published", "store_path": str(store / "ab/ab12.mp4")},
             {"clip_id": "r1", "tier": "free", "final_status": "blocked"}]
    ledger = [{"clip_id": "r2", "steps": 50, "gpu_seconds": 1.23456, "cost_usd": 0.0012345678,
               "api_equivalent_usd": 0.2625, "cache_hit": False, "storage_usd": 1e-7},
              {"clip_id": "r1", "steps": 30, "gpu_seconds": 0.5, "cost_usd": 0.0005, "api_equivalent_usd": 0.1,
               "cache_hit": False}]
    rows = cost_rows(clips, ledger, store)
    assert [r["clip_id"] for r in rows] == ["r2", "r1"] and all(list(r) == COST_COLUMNS for r in rows)
    assert rows[0] == {"clip_id": "r2", "tier": "paid", "status": "published", "steps": 50, "gpu_seconds": 1.235,
                       "cost_usd": 0.001235, "api_equivalent_usd": 0.26, "cache_hit": False,
                       "store_object": "ab/ab12.mp4"}
    assert rows[1]["store_object"] == "" and rows[1]["gpu_seconds"] == 0.5  # blocked: billed, not stored
    orphan = cost_rows([{"clip_id": "x"}], [], store)[0]
    assert orphan["gpu_seconds"] == 0.0 and orphan["steps"] == 0 and orphan["status"] == ""
    totals = cost_totals(ledger)
    assert totals["gpu_seconds"] == 1.735 and totals["api_equivalent_usd"] == 0.36
    assert totals["savings_vs_api_usd"] == round(0.3625 - 0.0017345678, 2)


def test_a_store_object_outside_the_store_keeps_its_full_path(tmp_path: Path) -> None:
    assert store_object(str(tmp_path / "elsewhere.mp4"), tmp_path / "store") == str(tmp_path / "elsewhere.mp4")
    assert store_object(None, tmp_path) == ""


def test_embedded_images_are_data_uris_and_oversized_ones_are_left_out() -> None:
    image = b"\xff\xd8\xff" + bytes(100)
    text = embedded_image_markdown(image, "image/jpeg", "contact sheet", "2 of 2 clips")
    uri = text.split("(", 1)[1].split(")", 1)[0]
    assert uri.startswith("data:image/jpeg;base64,") and base64.b64decode(uri.split(",", 1)[1]) == image
    assert text.startswith("![contact sheet](") and text.endswith("\n\n2 of 2 clips")
    too_big = embedded_image_markdown(image, "image/jpeg", "contact sheet", max_bytes=10)
    assert "data:" not in too_big and "103 bytes" in too_big
