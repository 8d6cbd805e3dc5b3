"""The pipeline home: one folder that holds everything the pipeline writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "SORA_ASSETS_HOME"
DEFAULT_HOME = "./data"


class OutsideHomeError(ValueError):
    """A path would land outside the pipeline home."""


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls, override: str | os.PathLike[str] | None = None) -> Home:
        raw = override if override is not None else os.environ.get(HOME_ENV, DEFAULT_HOME)
        return cls(Path(raw).expanduser().resolve())

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def batches(self) -> Path:
        return self.root / "batches"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def warehouse_db(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def work(self) -> Path:
        """Scratch space for clips between stages (renders, signed copies before publishing)."""
        return self.root / "work"

    @property
    def previews(self) -> Path:
        """Contact sheets per shard (PNG), linked from the Dagster UI."""
        return self.root / "previews"

    @property
    def failpoints(self) -> Path:
        """Markers of failpoints that already fired (each fires once per home)."""
        return self.work / ".failpoints"

    def input_path(self, name: str) -> Path:
        """Where a row's `image` lives locally: under inputs/ (confined), or for `s3://bucket/key` the
        local copy at inputs/s3/<bucket>/<key> (the store resource downloads it there)."""
        if name.startswith("s3://"):
            return self.confine(self.inputs / "s3" / name.removeprefix("s3://"))
        return self.confine(self.inputs / name)

    @property
    def inputs(self) -> Path:
        """Conditioning images a row may name in its `image` field (paths are relative to this folder)."""
        return self.root / "inputs"

    @property
    def prices(self) -> Path:
        """Price curves and GPU capacity as CSV (see core/planning/prices.py); empty = the default curve."""
        return self.root / "prices"

    @property
    def plans(self) -> Path:
        """Render plans as JSON, `latest.json` being the one the window sensor follows."""
        return self.root / "plans"

    @property
    def calibration(self) -> Path:
        """Measured speed-up and quality of each acceleration preset per model revision (`sora-assets calibrate`)."""
        return self.root / "calibration"

    @property
    def dagster_io(self) -> Path:
        return self.root / "dagster_io"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def default_model_path(self) -> Path:
        return self.models / "tiny-wan"

    def ensure(self) -> Home:
        for path in (self.inbox, self.batches, self.quarantine, self.store, self.checkpoints,
                     self.keys, self.models, self.warehouse, self.work):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def confine(self, path: os.PathLike[str] | str) -> Path:
        """Resolve `path` and refuse it unless it lies inside the home."""
        resolved = Path(path).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise OutsideHomeError(f"{resolved} is outside the pipeline home {self.root}")
        return resolved
