"""The few object-store operations the pipeline needs, as a protocol (no cloud SDK, no Dagster import).

Step checkpoints mirror themselves to a `BlobStore` so a render that dies on one machine resumes on
another; the S3 implementation lives in `sora_assets/resources/s3.py`, an in-memory one in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` whole (readers never see part of it)."""

    def get(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there is no such object."""

    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix`, sorted."""

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the keys (missing ones are fine)."""
