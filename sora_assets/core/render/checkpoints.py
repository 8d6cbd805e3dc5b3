"""Step checkpoints of a render: latents, scheduler state and generator state every k steps.

Layout: `<home>/checkpoints/<partition>/<clip>/step-NNNNN.pt` plus `step-NNNNN.json`, a sidecar with
the file's SHA-256 and what it belongs to. Both are written atomically, the sidecar last, so a
checkpoint without a matching sidecar never counts. Loading verifies the hash, the cache key, the
step count and that the latents are finite; anything else falls back to the previous checkpoint.

With a `mirror` (an object store such as S3) every checkpoint is also uploaded, tensor first and sidecar
last, and `latest()` first pulls the mirror's checkpoints it lacks: a render killed on one GPU machine
resumes on another from the same step.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sora_assets.core.storage.blobs import BlobStore
from sora_assets.core.storage.fsutil import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file

FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step-(\d{5})\.json$")


@dataclass
class StepCheckpoint:
    """Everything needed to continue a render after `next_step` completed steps."""

    cache_key: str
    next_step: int
    total_steps: int
    latents: Any  # torch.Tensor, (1, C, F, H, W), on CPU
    scheduler_state: dict[str, Any]
    generator_state: Any = None  # torch.ByteTensor, for stochastic schedulers
    gpu_seconds: float = 0.0  # compute spent on steps 1..next_step (carried into the clip's cost)
    step_seconds: list[float] = field(default_factory=list)


@dataclass
class LoadAttempt:
    path: Path
    reason: str


class ClipCheckpoints:
    """The checkpoint folder of one clip in one partition."""

    def __init__(self, root: Path, partition_key: str, clip_id: str, keep: int = 2,
                 mirror: BlobStore | None = None):
        self.folder = root / partition_key / clip_id
        self.keep = max(1, keep)
        self.mirror = mirror
        self.remote_prefix = f"{partition_prefix(partition_key)}{clip_id}/"
        self.rejected: list[LoadAttempt] = []  # checkpoints skipped by the last `latest()`, with reasons

    def _sidecars(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted((p for p in self.folder.iterdir() if _STEP_FILE.match(p.name)), reverse=True)

    def save(self, checkpoint: StepCheckpoint) -> Path:
        import torch

        payload = {
            "format": FORMAT_VERSION, "cache_key": checkpoint.cache_key, "next_step": checkpoint.next_step,
            "total_steps": checkpoint.total_steps, "latents": checkpoint.latents,
            "scheduler_state": checkpoint.scheduler_state, "generator_state": checkpoint.generator_state,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        stem = f"step-{checkpoint.next_step:05d}"
        # no fsync: a checkpoint is verified by hash on load, so one lost to a power cut is just skipped
        tensor_path = atomic_write_bytes(self.folder / f"{stem}.pt", data, durable=False)
        atomic_write_json(self.folder / f"{stem}.json", {
            "format": FORMAT_VERSION, "file": tensor_path.name, "sha256": sha256_bytes(data),
            "bytes": len(data), "cache_key": checkpoint.cache_key, "next_step": checkpoint.next_step,
            "total_steps": checkpoint.total_steps, "gpu_seconds": checkpoint.gpu_seconds,
            "step_seconds": checkpoint.step_seconds, "written_at": datetime.now(UTC).isoformat(),
        }, durable=False, indent=None)
        if self.mirror is not None:  # sidecar last, as on disk: a mirrored tensor without one never counts
            self.mirror.put(self.remote_prefix + tensor_path.name, data)
            self.mirror.put(self.remote_prefix + f"{stem}.json", (self.folder / f"{stem}.json").read_bytes())
        self._prune()
        return tensor_path

    def _prune(self) -> None:
        """Keep the newest `keep` checkpoints: the newest may be torn by a crash, the one before is the fallback."""
        for sidecar in self._sidecars()[self.keep:]:
            sidecar.with_suffix(".pt").unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            if self.mirror is not None:
                self.mirror.delete([self.remote_prefix + sidecar.name,
                                    self.remote_prefix + sidecar.with_suffix(".pt").name])

    def pull(self) -> list[str]:
        """Copy the mirror's checkpoints this machine lacks into the local folder (tensor first, sidecar last)."""
        if self.mirror is None:
            return []
        pulled = []
        for key in self.mirror.keys(self.remote_prefix):
            name = key[len(self.remote_prefix):]
            if not _STEP_FILE.match(name) or (self.folder / name).exists():
                continue
            sidecar = self.mirror.get(key)
            tensor = self.mirror.get(self.remote_prefix + name.replace(".json", ".pt"))
            if sidecar is None or tensor is None:
                continue  # pruned meanwhile: nothing to resume from
            atomic_write_bytes(self.folder / name.replace(".json", ".pt"), tensor, durable=False)
            atomic_write_bytes(self.folder / name, sidecar, durable=False)
            pulled.append(name)
        return pulled

    def latest(self, cache_key: str, total_steps: int) -> StepCheckpoint | None:
        """The newest checkpoint that verifies, or None; skipped ones are listed in `rejected`."""
        self.rejected = []
        self.pull()
        for sidecar in self._sidecars():
            try:
                checkpoint = self._load(sidecar, cache_key, total_steps)
            except Exception as error:  # a checkpoint we cannot trust is skipped, whatever went wrong
                self.rejected.append(LoadAttempt(sidecar, f"{type(error).__name__}: {error}"))
                continue
            return checkpoint
        return None

    def _load(self, sidecar: Path, cache_key: str, total_steps: int) -> StepCheckpoint:
        import torch

        meta = json.loads(sidecar.read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {meta.get('format')!r} is not {FORMAT_VERSION}")
        if meta.get("cache_key") != cache_key:
            raise ValueError("checkpoint belongs to a different generation spec")
        if meta.get("total_steps") != total_steps:
            raise ValueError(f"checkpoint is for {meta.get('total_steps')} steps, not {total_steps}")
        tensor_path = sidecar.with_name(meta["file"])
        if sha256_file(tensor_path) != meta["sha256"]:
            raise ValueError("checksum mismatch")
        payload = torch.load(tensor_path, map_location="cpu", weights_only=True)
        if payload["cache_key"] != cache_key or payload["next_step"] != meta["next_step"]:
            raise ValueError("payload does not match its sidecar")
        if not 0 < payload["next_step"] < total_steps:
            raise ValueError(f"next_step {payload['next_step']} outside 1..{total_steps - 1}")
        if not torch.isfinite(payload["latents"]).all():
            raise ValueError("latents are not finite")
        return StepCheckpoint(
            cache_key=cache_key, next_step=payload["next_step"], total_steps=total_steps,
            latents=payload["latents"], scheduler_state=payload["scheduler_state"],
            generator_state=payload["generator_state"], gpu_seconds=float(meta.get("gpu_seconds") or 0.0),
            step_seconds=[float(s) for s in meta.get("step_seconds") or []])

    def steps_saved(self) -> list[int]:
        return sorted(int(_STEP_FILE.match(p.name).group(1)) for p in self._sidecars())

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.mirror is not None:
            self.mirror.delete(self.mirror.keys(self.remote_prefix))


def partition_prefix(partition_key: str) -> str:
    """Where a partition's checkpoints live in a mirror: `checkpoints/<partition>/`."""
    return f"checkpoints/{partition_key}/"


def clear_partition(root: Path, partition_key: str, mirror: BlobStore | None = None) -> None:
    """Drop a partition's checkpoints once its clips are published (or dead-lettered)."""
    shutil.rmtree(root / partition_key, ignore_errors=True)
    if mirror is not None:
        mirror.delete(mirror.keys(partition_prefix(partition_key)))
