"""The home folder as a resource, and the default resource set for a home."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import ConfigurableResource, FilesystemIOManager
from pydantic import Field

from sora_assets.core.storage.blobs import BlobStore
from sora_assets.core.storage.home import Home
from sora_assets.core.storage.work_area import WorkArea


class HomeResource(ConfigurableResource):
    path: str = Field(description="Pipeline home (SORA_ASSETS_HOME).")
    shard_size: int = Field(default=64, description="Most prompts in one shard (one dynamic partition).")
    publish_flagged: bool = Field(default=True, description="Publish clips the frame scan flagged (not blocked).")

    @property
    def home(self) -> Home:
        return Home.from_env(self.path).ensure()

    def work_area(self, key: str, mirror: BlobStore | None = None) -> WorkArea:
        """The shard's work area and quarantine: every file move, write and sweep of a shard goes through it
        (`mirror`: where step checkpoints are also kept, e.g. S3)."""
        return WorkArea(self.home, key, mirror)


def default_resources(home: Home, shard_size: int = 64) -> dict[str, Any]:
    from sora_assets.resources.alignment import ClipAlignmentResource
    from sora_assets.resources.observability import ObservabilityResource, observability_settings_from_env
    from sora_assets.resources.planner import PlannerResource, planner_settings_from_env
    from sora_assets.resources.safety import FrameSafetyResource
    from sora_assets.resources.signer import C2paSignerResource
    from sora_assets.resources.video_model import VideoModelResource, model_settings_from_env

    return {
        "home": HomeResource(path=str(home.root), shard_size=shard_size),
        # optional CLIP score: a local CLIP folder (transformers layout); unset, the score is not computed
        "alignment": ClipAlignmentResource(model_path=os.environ.get("SORA_ASSETS_CLIP_PATH", "")),
        "video_model": VideoModelResource(**model_settings_from_env(os.environ, home.default_model_path)),
        **storage_resources(home),
        "signer": C2paSignerResource(keys_dir=str(home.keys)),
        "frame_safety": FrameSafetyResource(),
        "planner": PlannerResource(**planner_settings_from_env(os.environ)),
        "observability": ObservabilityResource(**observability_settings_from_env(os.environ)),
        "io_manager": FilesystemIOManager(base_dir=str(home.dagster_io)),
    }


def storage_resources(home: Home, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`store` and `warehouse`: under the home by default, on S3 when SORA_ASSETS_STORAGE=s3.

    On S3 the home still holds local copies (fetched clips, synced Parquet, checkpoints in flight),
    which any machine can lose without losing data.
    """
    from sora_assets.resources.s3 import s3_resources, s3_settings_from_env
    from sora_assets.resources.store import LocalClipStore
    from sora_assets.resources.warehouse import ParquetWarehouse

    settings = s3_settings_from_env(os.environ if env is None else env)
    if settings is not None:
        return s3_resources(settings, home.store, home.warehouse, home.warehouse_db)
    return {"store": LocalClipStore(root=str(home.store)),
            "warehouse": ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))}
