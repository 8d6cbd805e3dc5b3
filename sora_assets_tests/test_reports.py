"""`sora-assets report` and the v_* views against hand-computed sums over synthetic warehouse rows."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from sora_assets.core.storage.home import Home
from sora_assets.resources.warehouse import ParquetWarehouse

T0 = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def ledger(batch: str, shard: str, n: int, tier: str, window: datetime, hit_every: int = 0) -> list[dict]:
    rows = []
    for i in range(n):
        hit = bool(hit_every) and i % hit_every == 0
        gpu = 0.0 if hit else 10.0 + i
        rows.append({"partition_key": shard, "batch_id": batch, "clip_id": f"{shard}-r{i:05d}",
                     "cache_key": f"{batch}-{i}" if not hit else f"shared-{i}", "tier": tier, "model": "tiny-wan",
                     "steps": 30 if tier == "free" else 50, "gpu_seconds": gpu, "window_start": window,
                     "price_per_gpu_hour": 2.8 if window.hour < 8 else 3.5, "overhead": 0.3,
                     "cost_usd": gpu / 3600 * (2.8 if window.hour < 8 else 3.5) * 1.3, "api_equivalent_usd": 0.14,
                     "cache_hit": hit, "device": "cpu", "recorded_at": window})
    return rows


@pytest.fixture
def filled(cli_env: dict[str, str]) -> tuple[Home, pd.DataFrame]:
    home = Home.from_env(cli_env["SORA_ASSETS_HOME"]).ensure()
    warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
    parts = {"alpha-0000000001-s000": ledger("alpha-0000000001", "alpha-0000000001-s000", 5, "paid", T0),
             "alpha-0000000001-s001": ledger("alpha-0000000001", "alpha-0000000001-s001", 4, "free", T1, 2),
             "beta-0000000002-s000": ledger("beta-0000000002", "beta-0000000002-s000", 3, "free", T1)}
    # the clips that the alpha cache hits reused were rendered by an earlier batch
    parts["early-0000000003-s000"] = [{**r, "batch_id": "early-0000000003", "partition_key": "early-0000000003-s000",
                                       "clip_id": f"early-{i}", "cache_key": f"shared-{i}", "cache_hit": False,
                                       "gpu_seconds": 7.0, "cost_usd": 0.01, "recorded_at": T0}
                                      for i, r in enumerate(ledger("x", "x", 4, "free", T0)) if i % 2 == 0]
    for shard, rows in parts.items():
        warehouse.write("cost_ledger", shard, "published_clips", rows)
    warehouse.write("quality_metrics", "alpha-0000000001-s000", "screened_clips", [
        {"partition_key": "alpha-0000000001-s000", "batch_id": "alpha-0000000001", "clip_id": f"c{i}",
         "cache_key": f"k{i}", "model": "tiny-wan", "width": 64, "height": 64, "num_frames": 9, "flicker": f,
         "motion": 1.0, "dynamic_degree": 1.0, "warp_error": 0.01, "sharpness": 100.0, "exposure": 0.5,
         "clipped_ratio": 0.0, "black_ratio": 0.0, "frozen_ratio": 0.0, "colour_drift": 1.0, "recorded_at": T0}
        for i, f in enumerate([0.02, 0.04])])
    warehouse.write("safety_events", "beta-0000000002-s000", "validated_prompts", [
        {"partition_key": "beta-0000000002-s000", "batch_id": "beta-0000000002", "clip_id": None, "row": r,
         "stage": "prefilter", "check_name": "text_prefilter", "frame_index": None, "label": "violence_gore",
         "score": 1.0, "action": "block", "policy_version": "v1", "detail": "", "recorded_at": T1} for r in (1, 2)])
    return home, pd.DataFrame([r for rows in parts.values() for r in rows])


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sora-assets", "report", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cost_reports_match_hand_computed_sums(filled: tuple[Home, pd.DataFrame], cli_env: dict[str, str]) -> None:
    _, rows = filled
    done = cli(cli_env, "cost", "--format", "json")
    assert done.returncode == 0, done.stderr
    reports = json.loads(done.stdout)["reports"]
    by_batch = {r["batch_id"]: r for r in reports["cost_by_batch"]}
    for batch, group in rows.groupby("batch_id"):
        assert by_batch[batch]["clips"] == len(group)
        assert by_batch[batch]["cache_hits"] == int(group.cache_hit.sum())
        assert by_batch[batch]["gpu_seconds"] == pytest.approx(group.gpu_seconds.sum())
        assert by_batch[batch]["cost_usd"] == pytest.approx(group.cost_usd.sum(), abs=1e-6)
    by_tier = {r["tier"]: r for r in reports["cost_by_tier"]}
    assert by_tier["paid"]["gpu_seconds"] == pytest.approx(rows[rows.tier == "paid"].gpu_seconds.sum())
    assert sum(r["clips"] for r in reports["cost_by_window"]) == len(rows)
    savings = {r["batch_id"]: r for r in reports["cache_savings"]}
    assert savings["alpha-0000000001"]["cache_hits"] == 2
    assert savings["alpha-0000000001"]["gpu_seconds_saved"] == pytest.approx(14.0)  # two reused 7 s renders


def test_filters_by_batch_and_since(filled: tuple[Home, pd.DataFrame], cli_env: dict[str, str]) -> None:
    _, rows = filled
    beta = json.loads(cli(cli_env, "cost", "--only", "cost_by_tier", "--batch", "beta-0000000002",
                          "--format", "json").stdout)["rows"]
    assert [(r["tier"], r["clips"]) for r in beta] == [("free", 3)]
    late = json.loads(cli(cli_env, "cost", "--only", "cost_by_batch", "--since", "2026-11-21T00:00:00+00:00",
                          "--format", "json").stdout)["rows"]
    assert sum(r["clips"] for r in late) == int((rows.recorded_at >= T1).sum())
    bad = cli(cli_env, "cost", "--since", "yesterday")
    assert bad.returncode == 2 and "ISO date" in bad.stderr


def test_csv_and_parquet_export_need_one_report(filled: tuple[Home, pd.DataFrame], cli_env: dict[str, str],
                                                tmp_path: Path) -> None:
    assert cli(cli_env, "cost", "--format", "csv").returncode == 2
    target = tmp_path / "tiers.parquet"
    done = cli(cli_env, "cost", "--only", "cost_by_tier", "--format", "csv", "--parquet", str(target))
    assert done.returncode == 0 and done.stdout.splitlines()[0].startswith("tier,clips,")
    assert set(pd.read_parquet(target).tier) == {"free", "paid"}


def test_quality_and_safety_reports_and_the_views_users_query(filled: tuple[Home, pd.DataFrame],
                                                              cli_env: dict[str, str]) -> None:
    home, rows = filled
    quality = json.loads(cli(cli_env, "quality", "--format", "json").stdout)["rows"]
    assert quality[0]["model"] == "tiny-wan" and quality[0]["flicker"] == pytest.approx(0.03)
    safety = json.loads(cli(cli_env, "safety", "--format", "json").stdout)["rows"]
    assert safety == [{"stage": "prefilter", "category": "violence_gore", "action": "block", "events": 2, "items": 2}]
    with duckdb.connect(str(home.warehouse_db), read_only=True) as connection:  # plain duckdb, as a user would
        total = connection.execute("SELECT sum(clips) FROM v_cost_by_batch").fetchone()[0]
        assert total == len(rows)
        assert connection.execute("SELECT count(*) FROM v_safety_by_category").fetchone()[0] == 1
