from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from sora_assets.resources.warehouse import ParquetWarehouse


@pytest.fixture
def warehouse(tmp_path: Path) -> ParquetWarehouse:
    return ParquetWarehouse(root=str(tmp_path / "warehouse"), db_path=str(tmp_path / "warehouse.duckdb"))


def ledger(clip_id: str, gpu: float, key: str = "b-s000") -> dict:
    return {"partition_key": key, "batch_id": "b", "clip_id": clip_id, "tier": "free", "model": "m",
            "steps": 30, "gpu_seconds": gpu, "window_start": datetime(2026, 11, 21, 2, tzinfo=UTC),
            "price_per_gpu_hour": 2.8, "overhead": 0.3, "cost_usd": gpu / 3600 * 2.8 * 1.3,
            "api_equivalent_usd": 0.15, "cache_hit": False, "device": "cpu", "recorded_at": datetime.now(UTC)}


def test_rewriting_a_partition_replaces_its_rows(warehouse: ParquetWarehouse) -> None:
    warehouse.write("cost_ledger", "b-s000", "published_clips", [ledger("c1", 1.0), ledger("c2", 2.0)])
    warehouse.write("cost_ledger", "b-s000", "published_clips", [ledger("c1", 1.0), ledger("c2", 2.0)])
    warehouse.write("cost_ledger", "b-s001", "published_clips", [ledger("c3", 4.0, "b-s001")])
    totals = warehouse.query("SELECT count(*) AS n, sum(gpu_seconds) AS s FROM cost_ledger")
    assert totals.n[0] == 3 and totals.s[0] == pytest.approx(7.0)
    assert list(warehouse.read("cost_ledger", "b-s000").clip_id) == ["c1", "c2"]


def test_views_in_the_duckdb_file_answer_plain_sql(warehouse: ParquetWarehouse, tmp_path: Path) -> None:
    warehouse.write("cost_ledger", "b-s000", "published_clips", [ledger("c1", 3.0)])
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        row = connection.execute("SELECT clip_id, gpu_seconds FROM cost_ledger").fetchall()
        assert row == [("c1", 3.0)]
        assert connection.execute("SELECT count(*) FROM rejections").fetchone() == (0,)


def test_empty_tables_have_their_columns(warehouse: ParquetWarehouse) -> None:
    frame = warehouse.query("SELECT * FROM cost_ledger")
    assert len(frame) == 0
    for column in ("partition_key", "batch_id", "clip_id", "tier", "model", "steps", "gpu_seconds",
                   "window_start", "price_per_gpu_hour", "cost_usd", "api_equivalent_usd", "cache_hit"):
        assert column in frame.columns


def test_unknown_table_is_refused(warehouse: ParquetWarehouse) -> None:
    with pytest.raises(KeyError):
        warehouse.write("nope", "k", "w", [])
