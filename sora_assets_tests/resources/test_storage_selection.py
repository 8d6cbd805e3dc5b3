"""Storage is chosen by environment: the home by default, S3 when SORA_ASSETS_STORAGE=s3."""

from __future__ import annotations

import pytest

from sora_assets.core.storage.home import Home
from sora_assets.resources.home import storage_resources
from sora_assets.resources.s3 import S3ClipStore, S3ParquetWarehouse, s3_settings_from_env
from sora_assets.resources.store import LocalClipStore
from sora_assets.resources.warehouse import ParquetWarehouse


def test_default_is_the_local_home(home: Home) -> None:
    resources = storage_resources(home, env={})
    assert isinstance(resources["store"], LocalClipStore) and resources["store"].checkpoint_mirror() is None
    assert type(resources["warehouse"]) is ParquetWarehouse


def test_s3_settings_select_s3_resources(home: Home) -> None:
    env = {"SORA_ASSETS_STORAGE": "s3", "SORA_ASSETS_S3_BUCKET": "studio-clips", "SORA_ASSETS_S3_PREFIX": "prod",
           "SORA_ASSETS_S3_ENDPOINT_URL": "http://minio:9000", "SORA_ASSETS_S3_MAX_ATTEMPTS": "7"}
    resources = storage_resources(home, env=env)
    store, warehouse = resources["store"], resources["warehouse"]
    assert isinstance(store, S3ClipStore) and store.location == "s3://studio-clips/prod/store"
    assert store.s3.endpoint_url == "http://minio:9000" and store.s3.max_attempts == 7
    assert isinstance(warehouse, S3ParquetWarehouse) and warehouse.read_mode == "sync"
    assert warehouse.duckdb_endpoint == "minio:9000" and warehouse.duckdb_use_ssl is False
    assert warehouse.root == str(home.warehouse)  # the local copy the sync fallback reads


@pytest.mark.parametrize("env, message", [
    ({"SORA_ASSETS_STORAGE": "s3"}, "SORA_ASSETS_S3_BUCKET"),
    ({"SORA_ASSETS_STORAGE": "gcs"}, "expected 'local' or 's3'"),
    ({"SORA_ASSETS_STORAGE": "s3", "SORA_ASSETS_S3_BUCKET": "b", "SORA_ASSETS_WAREHOUSE_READ": "odbc"}, "httpfs"),
])
def test_misconfiguration_fails_with_a_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        s3_settings_from_env(env)
