"""S3 (or any S3-compatible server) for clips, step checkpoints and warehouse Parquet.

Everything goes through dagster-aws's `S3Resource` (boto3), whose client retries throttling and
5xx answers (botocore "standard" mode, `max_attempts`). A PutObject is atomic on S3: a failed or
retried upload never leaves part of an object, and every upload carries Content-MD5 so the server
rejects a body damaged on the way. Clips are published object → sidecar → cache index, as locally.

Reading the warehouse: DuckDB's httpfs extension can read the Parquet straight from S3
(`read_mode="httpfs"`), but the extension is downloaded on first use, so an offline machine uses the
documented fallback (`read_mode="sync"`, the default): changed Parquet files are copied into the
local warehouse folder and the usual views run over them. See docs/DEPLOY.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from sora_assets.core.render import failpoints
from sora_assets.core.storage.fsutil import atomic_copy, atomic_write_bytes, sha256_bytes, sha256_file
from sora_assets.resources.store import ClipStore, CorruptObjectError, StoredClip
from sora_assets.resources.warehouse import PUBLISHED_LEDGER, SCHEMA_PARTITION, ParquetWarehouse

MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def _is_missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in MISSING_CODES


def _content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - S3's integrity header


class S3Blobs:
    """A `BlobStore` (sora_assets.core.storage.blobs) on one bucket under one prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = ""):
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, key: str) -> str:
        return _join(self.prefix, key)

    def put(self, key: str, data: bytes, **extra: Any) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentMD5=_content_md5(data),
                               **extra)

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as error:
            if _is_missing(error):
                return None
            raise

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as error:
            if _is_missing(error):
                return None
            raise

    def listing(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Key (relative to this store's prefix) → S3 listing entry (ETag, Size), for every key under `prefix`."""
        full = self._key(prefix) + ("/" if prefix.endswith("/") else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for entry in page.get("Contents", []):
                found[entry["Key"][cut:]] = entry
        return dict(sorted(found.items()))

    def keys(self, prefix: str) -> list[str]:
        return list(self.listing(prefix))

    def delete(self, keys: Iterable[str]) -> None:
        batch = [{"Key": self._key(k)} for k in keys]
        for start in range(0, len(batch), 1000):  # DeleteObjects takes at most 1000 keys
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch[start:start + 1000]})


class S3ClipStore(ClipStore):
    """Clips under `s3://<bucket>/<prefix>/store/` in the local store's layout; objects are fetched into
    `cache_dir` (normally <home>/store) and verified by hash before anything reads them."""

    s3: S3Resource
    bucket: str = Field(description="Bucket holding the store, checkpoints and warehouse.")
    prefix: str = Field(default="", description="Key prefix inside the bucket (one per environment).")
    cache_dir: str = Field(description="Local folder for fetched clips, normally <home>/store.")
    _client: Any = PrivateAttr(default=None)

    def blobs(self, area: str) -> S3Blobs:
        if self._client is None:
            self._client = self.s3.get_client()
        return S3Blobs(self._client, self.bucket, _join(self.prefix, area))

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{_join(self.prefix, 'store')}"

    @staticmethod
    def _object_key(sha256: str) -> str:
        return f"{sha256[:2]}/{sha256}.mp4"

    @staticmethod
    def _sidecar_key(sha256: str) -> str:
        return f"{sha256[:2]}/{sha256}.json"

    @staticmethod
    def _index_key(cache_key: str) -> str:
        return f"cache/{cache_key[:2]}/{cache_key}.json"

    def _local(self, sha256: str) -> Path:
        return Path(self.cache_dir) / self._object_key(sha256)

    def object_path(self, sha256: str) -> Path:
        return self.get(sha256).path

    def has(self, cache_key: str) -> bool:
        return self.blobs("store").head(self._index_key(cache_key)) is not None

    def lookup(self, cache_key: str) -> StoredClip | None:
        index = self.blobs("store").get(self._index_key(cache_key))
        if index is None:
            return None
        try:
            return self.get(json.loads(index)["sha256"])
        except (FileNotFoundError, CorruptObjectError):
            return None

    def get(self, sha256: str) -> StoredClip:
        store = self.blobs("store")
        local = self._local(sha256)
        if not local.exists() or sha256_file(local) != sha256:
            data = store.get(self._object_key(sha256))
            if data is None:
                raise FileNotFoundError(f"{self.location}/{self._object_key(sha256)}")
            if sha256_bytes(data) != sha256:
                raise CorruptObjectError(f"{self._object_key(sha256)} does not match its content address")
            atomic_write_bytes(local, data, mode=0o444)
        sidecar = store.get(self._sidecar_key(sha256))
        if sidecar is None:
            raise FileNotFoundError(f"{self.location}/{self._sidecar_key(sha256)}")
        return StoredClip(sha256=sha256, path=local, sidecar=json.loads(sidecar))

    def publish(self, source: Path, cache_key: str, sidecar: dict[str, Any],
                failpoint_dir: Path | None = None) -> StoredClip:
        """Upload under the content hash (skipped if the bucket has it), then the sidecar, the index last."""
        store = self.blobs("store")
        data = source.read_bytes()
        sha = sha256_bytes(data)
        head = store.head(self._object_key(sha))
        if head is None or head.get("Metadata", {}).get("sha256") != sha or head["ContentLength"] != len(data):
            failpoints.hit("publish.before_rename", None, failpoint_dir)  # the object is not visible yet
            store.put(self._object_key(sha), data, Metadata={"sha256": sha}, ContentType="video/mp4")
        record = {**sidecar, "sha256": sha, "cache_key": cache_key, "bytes": len(data)}
        store.put(self._sidecar_key(sha), json.dumps(record, indent=2, sort_keys=True, default=str).encode(),
                  ContentType="application/json")
        store.put(self._index_key(cache_key), json.dumps({"sha256": sha}).encode(), ContentType="application/json")
        local = self._local(sha)
        if not local.exists() or sha256_file(local) != sha:
            atomic_copy(source, local, mode=0o444)
        return StoredClip(sha256=sha, path=local, sidecar=record)

    def fetch_input(self, uri: str, target: Path) -> Path:
        """Download `s3://bucket/key` (any bucket the credentials can read) to `target`, atomically."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ValueError(f"{uri[:80]!r} is not an s3://bucket/key URI")
        if self._client is None:
            self._client = self.s3.get_client()
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:  # noqa: BLE001 - botocore's errors: a missing key, a denied bucket
            raise OSError(f"cannot read {uri[:80]}: {error}") from error
        atomic_write_bytes(target, body)
        return target

    def checkpoint_mirror(self) -> S3Blobs:
        return self.blobs("")  # keys are checkpoints/<partition>/<clip>/step-NNNNN.{pt,json}


class S3ParquetWarehouse(ParquetWarehouse):
    """The Parquet warehouse with S3 as the source of truth and `root` as a local copy.

    Writes go to the local folder and then to `s3://<bucket>/<prefix>/warehouse/<table>/partition=<key>/`;
    reads first bring the local copy up to date (ETag = MD5 for these single-part uploads), dropping files
    whose partition was replaced or removed in the bucket.
    """

    s3: S3Resource
    bucket: str = Field(description="Bucket holding the warehouse Parquet.")
    prefix: str = Field(default="", description="Key prefix inside the bucket.")
    read_mode: str = Field(default="sync", description="'sync' (copy changed Parquet locally, works offline) or "
                                                       "'httpfs' (DuckDB reads S3 directly; needs the extension).")
    duckdb_endpoint: str = Field(default="", description="host:port of an S3-compatible server for httpfs "
                                                         "(empty: AWS).")
    duckdb_use_ssl: bool = Field(default=True, description="httpfs over HTTPS.")
    region: str = Field(default="us-east-1", description="Region DuckDB's httpfs signs requests for.")
    _client: Any = PrivateAttr(default=None)

    def blobs(self) -> S3Blobs:
        if self._client is None:
            self._client = self.s3.get_client()
        return S3Blobs(self._client, self.bucket, _join(self.prefix, "warehouse"))

    def _relative(self, path: Path) -> str:
        return path.relative_to(Path(self.root)).as_posix()

    def write(self, table: str, partition_key: str, writer: str, rows: Iterable[dict[str, Any]]) -> Path:
        path = super().write(table, partition_key, writer, rows)
        self.blobs().put(self._relative(path), path.read_bytes())
        return path

    def sync(self, table: str | None = None, partition_key: str | None = None) -> dict[str, int]:
        """Bring the local copy of `table` (or every table) up to date with the bucket."""
        scope = f"{table}/" if table else ""
        if table and partition_key:
            scope += f"partition={partition_key}/"
        blobs = self.blobs()
        remote = {k: e for k, e in blobs.listing(scope).items() if k.endswith(".parquet")}
        root = Path(self.root)
        fetched = removed = 0
        for key, entry in remote.items():
            local = root / key
            etag = entry["ETag"].strip('"')
            if local.exists() and local.stat().st_size == entry["Size"] and \
                    hashlib.md5(local.read_bytes()).hexdigest() == etag:  # noqa: S324 - S3's ETag
                continue
            data = blobs.get(key)
            if data is not None:
                atomic_write_bytes(local, data, durable=False)
                fetched += 1
        folder = root / table if table else root
        if partition_key and table:
            folder = folder / f"partition={partition_key}"
        for local in folder.rglob("*.parquet") if folder.exists() else []:
            relative = self._relative(local)
            if f"/{SCHEMA_PARTITION}/" not in f"/{relative}" and relative not in remote:
                local.unlink(missing_ok=True)  # its partition was replaced or dropped in the bucket
                removed += 1
        return {"objects": len(remote), "fetched": fetched, "removed": removed}

    def published_partitions(self) -> set[str]:
        """Published shards as the bucket says (a listing, no download): another machine's publish counts."""
        return {key.split("/")[1].removeprefix("partition=") for key in self.blobs().keys("cost_ledger/")
                if key.endswith(f"/{PUBLISHED_LEDGER}") and key.count("/") == 2}

    def read(self, table: str, partition_key: str | None = None) -> pd.DataFrame:
        self.sync(table, partition_key)
        return super().read(table, partition_key)

    def _table_glob(self, table: str) -> str:
        if self.read_mode == "httpfs":
            return f"s3://{self.bucket}/{_join(self.prefix, 'warehouse', table)}/*/*.parquet"
        return super()._table_glob(table)

    def httpfs_settings(self) -> list[str]:
        """The DuckDB statements that let httpfs read this bucket (credentials from the environment)."""
        options = ["TYPE s3", "PROVIDER credential_chain", f"REGION '{self.region}'"]
        if self.duckdb_endpoint:
            options += [f"ENDPOINT '{self.duckdb_endpoint}'", "URL_STYLE 'path'",
                        f"USE_SSL {'true' if self.duckdb_use_ssl else 'false'}"]
        return ["INSTALL httpfs", "LOAD httpfs", f"CREATE OR REPLACE SECRET sora_assets_s3 ({', '.join(options)})"]

    def connect(self) -> duckdb.DuckDBPyConnection:
        if self.read_mode != "httpfs":
            self.sync()
            return super().connect()
        connection = duckdb.connect()
        for statement in self.httpfs_settings() + self._view_sql():
            connection.execute(statement)
        return connection


def s3_settings_from_env(env: Mapping[str, str]) -> dict[str, Any] | None:
    """S3 settings when SORA_ASSETS_STORAGE=s3 (else None: the local home).

    SORA_ASSETS_S3_BUCKET (required), SORA_ASSETS_S3_PREFIX, SORA_ASSETS_S3_ENDPOINT_URL (MinIO, a
    loopback test server), SORA_ASSETS_S3_REGION, SORA_ASSETS_S3_MAX_ATTEMPTS (default 5),
    SORA_ASSETS_WAREHOUSE_READ (sync | httpfs), SORA_ASSETS_DUCKDB_S3_ENDPOINT (host:port for httpfs).
    Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/..., an instance role, IRSA).
    """
    backend = env.get("SORA_ASSETS_STORAGE", "local").strip().lower()
    if backend in ("", "local"):
        return None
    if backend != "s3":
        raise ValueError(f"SORA_ASSETS_STORAGE={backend!r}: expected 'local' or 's3'")
    bucket = env.get("SORA_ASSETS_S3_BUCKET", "").strip()
    if not bucket:
        raise ValueError("SORA_ASSETS_STORAGE=s3 needs SORA_ASSETS_S3_BUCKET")
    endpoint = env.get("SORA_ASSETS_S3_ENDPOINT_URL") or None
    read_mode = env.get("SORA_ASSETS_WAREHOUSE_READ", "sync")
    if read_mode not in ("sync", "httpfs"):
        raise ValueError(f"SORA_ASSETS_WAREHOUSE_READ={read_mode!r}: expected 'sync' or 'httpfs'")
    region = env.get("SORA_ASSETS_S3_REGION") or env.get("AWS_REGION") or "us-east-1"
    duckdb_endpoint = env.get("SORA_ASSETS_DUCKDB_S3_ENDPOINT") or (endpoint.split("://", 1)[-1] if endpoint else "")
    return {"bucket": bucket, "prefix": env.get("SORA_ASSETS_S3_PREFIX", ""), "endpoint_url": endpoint,
            "region": region, "max_attempts": int(env.get("SORA_ASSETS_S3_MAX_ATTEMPTS", "5")),
            "read_mode": read_mode, "duckdb_endpoint": duckdb_endpoint,
            "duckdb_use_ssl": not (endpoint or "").startswith("http://")}


def s3_resources(settings: dict[str, Any], store_cache: Path, warehouse_root: Path,
                 warehouse_db: Path) -> dict[str, Any]:
    """The `store` and `warehouse` resources on S3, sharing one configured S3Resource."""
    s3 = S3Resource(endpoint_url=settings["endpoint_url"], region_name=settings["region"],
                    max_attempts=settings["max_attempts"])
    return {
        "store": S3ClipStore(s3=s3, bucket=settings["bucket"], prefix=settings["prefix"], cache_dir=str(store_cache)),
        "warehouse": S3ParquetWarehouse(
            s3=s3, bucket=settings["bucket"], prefix=settings["prefix"], root=str(warehouse_root),
            db_path=str(warehouse_db), read_mode=settings["read_mode"], duckdb_endpoint=settings["duckdb_endpoint"],
            duckdb_use_ssl=settings["duckdb_use_ssl"], region=settings["region"]),
    }
