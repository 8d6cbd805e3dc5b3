from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from sora_assets.resources.warehouse import VIEWS_VERSION, ParquetWarehouse


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


WRITER = """
import os, sys, time
from datetime import UTC, datetime
from sora_assets.resources.warehouse import ParquetWarehouse
root, db, me, go = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
warehouse = ParquetWarehouse(root=root, db_path=db)
for attempt in range(12):  # rewrite the same five partitions again and again: replace, never append
    if attempt == 1:  # the rest only once the test has read mid-write (a read is then certain, at any speed)
        deadline = time.monotonic() + 300
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.01)
    for shard in range(5):
        key = f"batch-0000000000-s{shard:03d}"
        rows = [{"partition_key": key, "batch_id": "batch-0000000000", "clip_id": f"{me}-{shard}-{i}",
                 "cache_key": "k", "tier": "paid", "model": "m", "steps": 50, "gpu_seconds": 1.0 + attempt,
                 "window_start": datetime(2026, 11, 21, tzinfo=UTC), "price_per_gpu_hour": 3.5, "overhead": 0.3,
                 "cost_usd": 0.001, "api_equivalent_usd": 0.14, "cache_hit": False, "device": "cpu",
                 "recorded_at": datetime.now(UTC)} for i in range(3)]
        warehouse.write("cost_ledger", key, f"writer_{me}", rows)
print("done")
"""


def test_four_concurrent_writer_processes_never_fail_lose_or_duplicate_rows(tmp_path: Path) -> None:
    import contextlib
    import subprocess
    import sys

    root, db, go = tmp_path / "warehouse", tmp_path / "warehouse.duckdb", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(db), str(n), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    reads = 0
    while any(w.poll() is None for w in writers):  # a user querying with plain duckdb meanwhile
        if db.exists() and (root / f".views-v{VIEWS_VERSION}").exists():
            with duckdb.connect(str(db), read_only=True) as connection:
                count = connection.execute("SELECT count(*) FROM cost_ledger").fetchone()[0]
            assert count <= 4 * 5 * 3
            reads += 1
            go.touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            writers[0].wait(timeout=0.05)  # paces the reader; returns early when the first writer ends
    outputs = [w.communicate() for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in outputs]
    assert reads > 0
    warehouse = ParquetWarehouse(root=str(root), db_path=str(db))
    final = warehouse.query("SELECT clip_id, gpu_seconds FROM cost_ledger")
    assert len(final) == 4 * 5 * 3 and final.clip_id.is_unique  # nothing lost, nothing doubled
    assert set(final.gpu_seconds) == {12.0}  # every partition holds each writer's last write


def test_rows_read_back_with_nan_for_missing_integers_are_written_again_as_nulls(tmp_path) -> None:
    from datetime import UTC, datetime

    from sora_assets.resources.warehouse import ParquetWarehouse

    warehouse = ParquetWarehouse(root=str(tmp_path / "wh"), db_path=str(tmp_path / "wh.duckdb"))
    row = {"partition_key": "p", "clip_id": "c", "stage": "frame", "check_name": "frame_scan", "frame_index": None,
           "row": 1, "recorded_at": datetime.now(UTC)}
    warehouse.write("safety_events", "p", "screened_clips", [row, {**row, "frame_index": 3}])
    again = warehouse.read("safety_events", "p").to_dict(orient="records")  # frame_index comes back as NaN
    warehouse.write("safety_events", "p", "screened_clips", again)
    assert sorted(warehouse.read("safety_events", "p").frame_index.fillna(-1)) == [-1, 3]
