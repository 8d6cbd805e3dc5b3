"""Cost aggregations over 10 million synthetic ledger rows: the same SQL as the v_cost_by_* views.

Writes the rows as Parquet partitions in the warehouse layout (one file per shard, 100 shards), opens
the views the way `sora-assets report` does, and times cost by batch, by tier and by window, each
best of 3, against a baseline in the same run: `count(*)` over the same files.

    python bench/warehouse.py [--rows 10000000] [--shards 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def synthesize(root: Path, rows: int, shards: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sora_assets.core.warehouse.schema import TABLES

    schema = TABLES["cost_ledger"]
    rng = np.random.default_rng(0)
    per_shard = rows // shards
    start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1_000_000)
    for shard in range(shards):
        batch = f"batch{shard // 4:04d}-0123456789"
        key = f"{batch}-s{shard % 4:03d}"
        hit = rng.random(per_shard) < 0.2
        gpu = np.where(hit, 0.0, rng.gamma(4.0, 30.0, per_shard))
        window = start + rng.integers(0, 30 * 24, per_shard) * 3_600_000_000
        price = np.where((window // 3_600_000_000) % 24 < 8, 2.8, 3.5)
        table = pa.table({
            "partition_key": pa.array([key] * per_shard), "batch_id": pa.array([batch] * per_shard),
            "clip_id": pa.array([f"{key}-r{i:06d}" for i in range(per_shard)]),
            "cache_key": pa.array([f"{shard:04d}{i:08d}" for i in range(per_shard)]),
            "tier": pa.array(np.where(rng.random(per_shard) < 0.3, "paid", "free")),
            "model": pa.array(["wan2.1-t2v-1.3b"] * per_shard), "steps": pa.array(np.full(per_shard, 50)),
            "gpu_seconds": pa.array(gpu), "window_start": pa.array(window, type=pa.timestamp("us", tz="UTC")),
            "price_per_gpu_hour": pa.array(price), "overhead": pa.array(np.full(per_shard, 0.3)),
            "cost_usd": pa.array(gpu / 3600 * price * 1.3), "api_equivalent_usd": pa.array(np.full(per_shard, 0.14)),
            "cache_hit": pa.array(hit), "device": pa.array(["cuda:0"] * per_shard),
            "recorded_at": pa.array(window, type=pa.timestamp("us", tz="UTC")),
        }, schema=schema)
        target = root / "cost_ledger" / f"partition={key}" / "published_clips.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)


def best_of(connection, sql: str, repeats: int = 3) -> tuple[float, int]:  # noqa: ANN001 - duckdb connection
    times, rows = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        rows = len(connection.execute(sql).fetchall())
        times.append(time.perf_counter() - started)
    return min(times), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=100)
    args = parser.parse_args()

    from sora_assets.core.warehouse.reports import report_sql
    from sora_assets.resources.warehouse import ParquetWarehouse

    with tempfile.TemporaryDirectory(prefix="bench-warehouse-") as tmp:
        root = Path(tmp) / "warehouse"
        started = time.perf_counter()
        synthesize(root, args.rows, args.shards)
        written = time.perf_counter() - started
        warehouse = ParquetWarehouse(root=str(root), db_path=str(Path(tmp) / "warehouse.duckdb"))
        with warehouse.connect() as connection:
            total = connection.execute("SELECT count(*) FROM cost_ledger").fetchone()[0]
            baseline, _ = best_of(connection, "SELECT count(*), sum(gpu_seconds) FROM cost_ledger")
            results = {name: best_of(connection, report_sql(name)[0])
                       for name in ("cost_by_batch", "cost_by_tier", "cost_by_window")}
            all_three = sum(seconds for seconds, _ in results.values())
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"rows: {total:,} in {args.shards} Parquet partitions (written in {written:.1f} s)")
    print(f"baseline count(*) + sum(gpu_seconds): {baseline:.3f} s")
    for name, (seconds, groups) in results.items():
        print(f"{name}: {seconds:.3f} s ({groups} groups), {seconds / baseline:.1f}x the baseline scan")
    print(f"all three: {all_three:.3f} s (target: each under 1 s)")


if __name__ == "__main__":
    main()
