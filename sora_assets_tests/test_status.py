"""The slo_snapshots asset and `sora-assets status` on a synthetic home (no renders)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import materialize
from dagster._core.test_utils import instance_for_test
from typer.testing import CliRunner

from sora_assets.cli import app
from sora_assets.core.storage.fsutil import atomic_write_json
from sora_assets.core.storage.home import Home
from sora_assets.defs.observability import slo_snapshots
from sora_assets.resources.home import HomeResource
from sora_assets.resources.observability import ObservabilityResource
from sora_assets.resources.warehouse import ParquetWarehouse

BATCH = "night-0123456789"
DONE, WAITING = f"{BATCH}-s000", f"{BATCH}-s001"


def synthetic_home(home: Home, now: datetime) -> ParquetWarehouse:
    """Two free shards registered 2 h ago; one published 1 h ago (4 clips: 3 rendered, 1 cache hit), 30 min
    before its deadline; one planned and pending; one open alert."""
    warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
    atomic_write_json(home.batches / BATCH / "batch.json", {
        "batch_id": BATCH, "shards": {DONE: "free", WAITING: "free"}, "accounts": {DONE: "a", WAITING: "a"},
        "submitted_at": (now - timedelta(hours=2)).isoformat(), "rows": 5})
    published = now - timedelta(hours=1)
    statuses = ["published", "published", "published", "cache_hit"]
    warehouse.write("clips", DONE, "published_clips", [
        {"partition_key": DONE, "clip_id": f"c{i}", "tier": "free", "status": s, "model": "tiny-wan", "width": 64,
         "height": 64, "num_frames": 9, "recorded_at": published} for i, s in enumerate(statuses)])
    warehouse.write("cost_ledger", DONE, "published_clips", [
        {"partition_key": DONE, "clip_id": f"c{i}", "tier": "free", "model": "tiny-wan", "gpu_seconds": g,
         "cache_hit": s == "cache_hit", "recorded_at": published}
        for i, (s, g) in enumerate(zip(statuses, [1.0, 2.0, 6.0, 0.0], strict=True))])
    warehouse.write("render_plan", "plan-1", "render_plan", [
        {"plan_id": "plan-1", "partition_key": key, "tier": "free", "deadline": published + timedelta(minutes=30),
         "planned_start": now - timedelta(hours=1, minutes=30), "est_gpu_seconds": 60.0,
         "recorded_at": now - timedelta(hours=2)} for key in (DONE, WAITING)])
    atomic_write_json(home.plans / "latest.json", {"plan_id": "plan-1", "estimates": {}, "assignments": [
        {"shard": key, "start": (now + timedelta(hours=1)).isoformat(), "est_gpu_seconds": 60.0,
         "deadline": (now + timedelta(hours=8)).isoformat(), "held_by_cap": key == WAITING}
        for key in (DONE, WAITING)]})
    warehouse.write("alerts", "nan-abort-rate-1", "alarms", [
        {"alert_id": "nan-abort-rate-1", "alarm": "nan_abort_rate", "signal": "nan_abort_rate", "subject": "",
         "severity": "critical", "status": "firing", "value": 0.1, "threshold": 0.005, "samples": 10,
         "message": "1 NaN abort(s) in 10 active clip(s)", "runbook": "nan-abort-rate", "fired_at": now,
         "recorded_at": now}])
    return warehouse


def test_slo_snapshot_asset_stores_hand_checked_figures(home: Home, tmp_path) -> None:
    now = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    warehouse = synthetic_home(home, now)
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = materialize([slo_snapshots], instance=instance, resources={
            "home": HomeResource(path=str(home.root)), "warehouse": warehouse,
            "observability": ObservabilityResource(clock=now.isoformat())})
    assert result.success
    rows = warehouse.query("SELECT * FROM slo_snapshots WHERE tier = 'free'")
    figures = {(r.metric, r.dimension): r.value for r in rows.itertuples()}
    assert set(rows.snapshot_id) == {"slo-20261121t230000"}
    assert figures[("end_to_end_p50_s", "")] == 3600.0  # registered 21:00, published 22:00
    assert figures[("deadline_slack_min_s", "")] == 1800.0  # deadline 22:30
    assert figures[("cache_hit_rate", "")] == pytest.approx(0.25)
    assert figures[("gpu_seconds_per_clip", "tiny-wan@64x64x9")] == pytest.approx(3.0)  # (1 + 2 + 6) / 3
    assert figures[("nan_abort_rate", "")] == 0.0


def test_status_json_computes_a_snapshot_and_shows_alerts_and_plan(home: Home, monkeypatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    synthetic_home(home, datetime.now(UTC))
    result = CliRunner().invoke(app, ["status", "--home", str(home.root), "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    figures = {(r["tier"], r["metric"], r["dimension"]): r["value"] for r in document["slo"]}
    assert figures[("free", "end_to_end_p50_s", "")] == pytest.approx(3600.0, abs=1)
    assert figures[("free", "queue_wait_p50_s", "")] is None  # no render run in the instance
    assert [a["signal"] for a in document["open_alerts"]] == ["nan_abort_rate"]
    assert document["open_alerts"][0]["runbook"] == "nan-abort-rate"
    assert document["plan"] == {"plan_id": "plan-1", "planned": 2, "launched": 1, "published": 1, "late": 0,
                                "held_by_cap": 1}
    table = CliRunner().invoke(app, ["status", "--home", str(home.root)])
    assert table.exit_code == 0 and "open alerts (1)" in table.stdout and "nan_abort_rate" in table.stdout
