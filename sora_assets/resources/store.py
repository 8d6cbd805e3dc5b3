"""Content-addressed clip store that doubles as the render cache.

`ClipStore` is the interface the assets use; `LocalClipStore` keeps clips under <home>/store and
`S3ClipStore` (sora_assets/resources/s3.py) in a bucket, chosen by SORA_ASSETS_STORAGE.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.render import failpoints
from sora_assets.core.storage.blobs import BlobStore
from sora_assets.core.storage.fsutil import atomic_copy, atomic_write_json, sha256_file


class CorruptObjectError(RuntimeError):
    """A stored clip no longer matches its checksum."""


@dataclass(frozen=True)
class StoredClip:
    sha256: str
    path: Path
    sidecar: dict[str, Any]


class ClipStore(ConfigurableResource):
    """What the assets need from a clip store: probe, look up, fetch and publish by content address.

    Publishing is ordered object → sidecar → cache index, so a crash or an error at any point leaves
    at most an unindexed object (re-published next time), never an index entry without its clip.
    """

    @property
    def location(self) -> str:
        """Where the clips live, for metadata and logs."""
        raise NotImplementedError

    def object_path(self, sha256: str) -> Path:
        """A local file holding the clip (a remote store fetches and verifies it first)."""
        raise NotImplementedError

    def has(self, cache_key: str) -> bool:
        raise NotImplementedError

    def lookup(self, cache_key: str) -> StoredClip | None:
        raise NotImplementedError

    def get(self, sha256: str) -> StoredClip:
        raise NotImplementedError

    def publish(self, source: Path, cache_key: str, sidecar: dict[str, Any],
                failpoint_dir: Path | None = None) -> StoredClip:
        raise NotImplementedError

    def fetch_input(self, uri: str, target: Path) -> Path:
        """Copy an input file named by URI (a row's `s3://bucket/key` image) to `target`."""
        raise ValueError(f"{uri[:80]!r}: S3 inputs need the S3 store (SORA_ASSETS_STORAGE=s3)")

    def checkpoint_mirror(self) -> BlobStore | None:
        """Where step checkpoints are mirrored so another machine can resume them (None: local only)."""
        return None


class LocalClipStore(ClipStore):
    """`<root>/<aa>/<sha256>.mp4` plus `<sha256>.json`; `<root>/cache/<kk>/<cache_key>.json` → sha256."""

    root: str = Field(description="Store folder, normally <home>/store.")

    @property
    def location(self) -> str:
        return self.root

    def _root(self) -> Path:
        return Path(self.root)

    def object_path(self, sha256: str) -> Path:
        return self._root() / sha256[:2] / f"{sha256}.mp4"

    def sidecar_path(self, sha256: str) -> Path:
        return self._root() / sha256[:2] / f"{sha256}.json"

    def _index_path(self, cache_key: str) -> Path:
        return self._root() / "cache" / cache_key[:2] / f"{cache_key}.json"

    def has(self, cache_key: str) -> bool:
        """Cheap cache probe for planning (no checksum): publishing still verifies with `lookup`."""
        # string paths: a plan probes every pending row (50,000 at a time), and pathlib's joins were 2/3 of it
        return os.path.exists(os.path.join(self.root, "cache", cache_key[:2], f"{cache_key}.json"))

    def lookup(self, cache_key: str) -> StoredClip | None:
        """The published clip for a cache key, verified against its checksum; None on a miss.

        A corrupt or missing object is a miss (it will be re-rendered), never served.
        """
        index = self._index_path(cache_key)
        if not index.exists():
            return None
        sha = json.loads(index.read_text())["sha256"]
        try:
            return self.get(sha)
        except (FileNotFoundError, CorruptObjectError):
            return None

    def get(self, sha256: str) -> StoredClip:
        path = self.object_path(sha256)
        if sha256_file(path) != sha256:
            raise CorruptObjectError(f"{path} does not match its content address")
        sidecar = json.loads(self.sidecar_path(sha256).read_text())
        return StoredClip(sha256=sha256, path=path, sidecar=sidecar)

    def publish(self, source: Path, cache_key: str, sidecar: dict[str, Any],
                failpoint_dir: Path | None = None) -> StoredClip:
        """Copy `source` in under its content hash; the cache index is written last."""
        sha = sha256_file(source)
        target = self.object_path(sha)
        if not target.exists() or sha256_file(target) != sha:
            atomic_copy(source, target, mode=0o444,
                        before_replace=lambda: failpoints.hit("publish.before_rename", None, failpoint_dir))
        record = {**sidecar, "sha256": sha, "cache_key": cache_key, "bytes": target.stat().st_size}
        atomic_write_json(self.sidecar_path(sha), record)
        atomic_write_json(self._index_path(cache_key), {"sha256": sha})
        return StoredClip(sha256=sha, path=target, sidecar=record)
