"""The warehouse: Parquet per partition plus DuckDB views over them.

Each materialisation replaces its own file `<table>/partition=<key>/<writer>.parquet` atomically, so
concurrent runs never contend for DuckDB's single-writer lock and re-runs never duplicate rows.
`warehouse.duckdb` holds only views, created once, for users' `duckdb` sessions.
"""

from __future__ import annotations

import fcntl
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.storage.fsutil import atomic_write_bytes
from sora_assets.core.warehouse.reports import view_statements
from sora_assets.core.warehouse.schema import TABLES

VIEWS_VERSION = 15  # bump when a table is added or changed (11: batch_completions; 12: preset on clips and
# ledger; 13: quarantined_clips; 14: render_attempts; 15: model_family on clips, ledger and quality,
# per-family cost/quality views)
PUBLISHED_LEDGER = "published_clips.parquet"  # cost_ledger file written by published_clips, last
SCHEMA_PARTITION = "_schema"  # a zero-row file per table so views exist before any data


class ParquetWarehouse(ConfigurableResource):
    root: str = Field(description="Folder holding <table>/partition=<key>/*.parquet, normally <home>/warehouse.")
    db_path: str = Field(description="DuckDB file with views for users, normally <home>/warehouse.duckdb.")

    def _table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise KeyError(f"unknown warehouse table {table!r}")
        return Path(self.root) / table

    def write(self, table: str, partition_key: str, writer: str, rows: Iterable[dict[str, Any]]) -> Path:
        """Replace this writer's rows for the partition (idempotent re-materialisation)."""
        schema = TABLES[table]
        # rows read back through pandas carry NaN for missing integers/strings: store them as nulls
        nullable = [name for name in schema.names if not pa.types.is_floating(schema.field(name).type)]
        records = [{name: row.get(name) for name in schema.names} for row in rows]
        for record in records:
            for name in nullable:
                value = record[name]
                if isinstance(value, float) and value != value:
                    record[name] = None
        arrow = pa.Table.from_pylist(records, schema=schema)
        sink = io.BytesIO()
        pq.write_table(arrow, sink)
        path = self._table_dir(table) / f"partition={partition_key}" / f"{writer}.parquet"
        atomic_write_bytes(path, sink.getvalue())
        self.ensure_views()
        return path

    def published_partitions(self) -> set[str]:
        """Shards whose publishing step wrote its ledger: the one answer to "is it published?"."""
        return {p.parent.name.removeprefix("partition=")
                for p in self._table_dir("cost_ledger").glob(f"partition=*/{PUBLISHED_LEDGER}")}

    def read(self, table: str, partition_key: str | None = None) -> pd.DataFrame:
        folder = self._table_dir(table)
        pattern = f"partition={partition_key}/*.parquet" if partition_key else "partition=*/*.parquet"
        files = sorted(folder.glob(pattern))
        if not files:
            return TABLES[table].empty_table().to_pandas()
        return pa.concat_tables([pq.read_table(f, schema=TABLES[table]) for f in files]).to_pandas()

    def _table_glob(self, table: str) -> str:
        """Where a view reads a table's Parquet (an S3 warehouse may point it at the bucket)."""
        return (Path(self.root) / table / "*" / "*.parquet").as_posix()

    def _view_sql(self) -> list[str]:
        statements = []
        for table in TABLES:
            statements.append(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
                              f"'{self._table_glob(table)}', union_by_name = true, hive_partitioning = false)")
        return statements + view_statements()  # report views over the table views

    def _ensure_schema_files(self) -> None:
        for table, schema in TABLES.items():
            path = self._table_dir(table) / SCHEMA_PARTITION / "schema.parquet"
            if not path.exists() or not pq.read_schema(path).equals(schema, check_metadata=False):
                sink = io.BytesIO()
                pq.write_table(schema.empty_table(), sink)
                atomic_write_bytes(path, sink.getvalue())

    def _views_current(self, marker: Path) -> bool:
        """The views exist and point at this folder (they hold absolute paths: a moved home needs new ones)."""
        return marker.exists() and Path(self.db_path).exists() and marker.read_text() == str(Path(self.root).resolve())

    def ensure_views(self) -> None:
        """Create the views in warehouse.duckdb once per home (and again if the views or the home move)."""
        marker = Path(self.root) / f".views-v{VIEWS_VERSION}"
        if self._views_current(marker):
            return
        Path(self.root).mkdir(parents=True, exist_ok=True)
        self._ensure_schema_files()
        with open(Path(self.root) / ".views.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one creator at a time; readers never take this
            if self._views_current(marker):
                return
            with duckdb.connect(self.db_path) as connection:
                for statement in self._view_sql():
                    connection.execute(statement)
            atomic_write_bytes(marker, str(Path(self.root).resolve()).encode())

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory connection with the same views: our own reports never touch the file lock."""
        if not self._views_current(Path(self.root) / f".views-v{VIEWS_VERSION}"):
            self._ensure_schema_files()  # schema files only change with VIEWS_VERSION: no footer reads per query
        connection = duckdb.connect()
        for statement in self._view_sql():
            connection.execute(statement)
        return connection

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with self.connect() as connection:
            return connection.execute(sql, params or []).df()
