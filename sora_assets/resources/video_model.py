"""The text-to-video model: a real diffusers pipeline loaded with `from_pretrained` from a local folder."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.prompt_rules import ModelProfile
from sora_assets.core.spec import GenerationSpec

_CACHE_LOCK = threading.Lock()
_PIPELINES: dict[tuple[str, str, str, bool], Any] = {}
LOAD_COUNT = {"loads": 0}  # per process; tests use it to prove one load per run
_SAMPLED_HASH_BYTES = 4 * 1024 * 1024


class NonFiniteLatentsError(RuntimeError):
    """Latents went NaN/inf during denoising: the clip is stopped at once."""

    def __init__(self, step: int):
        super().__init__(f"non-finite latents after step {step}")
        self.step = step


@dataclass
class RenderResult:
    frames: np.ndarray  # float32 (F, H, W, 3) in [0, 1]
    gpu_seconds: float
    steps_run: int
    step_seconds: list[float] = field(default_factory=list)
    decode_seconds: float = 0.0
    device: str = "cpu"


def model_fingerprint(model_path: Path) -> str:
    """A revision id for the cache key, computed without loading the model.

    Config and tokenizer files are hashed whole; weight files by size plus their first and last
    4 MiB, so a multi-GB checkpoint is fingerprinted in milliseconds yet any re-export changes it.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in model_path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        relative = path.relative_to(model_path).as_posix()
        size = path.stat().st_size
        digest.update(f"{relative}\0{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= 2 * _SAMPLED_HASH_BYTES:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_SAMPLED_HASH_BYTES))
                handle.seek(size - _SAMPLED_HASH_BYTES)
                digest.update(handle.read())
    return digest.hexdigest()[:16]


class VideoModelResource(ConfigurableResource):
    """Loads a diffusers text-to-video pipeline once per process and renders specs with it."""

    model_path: str = Field(description="Local diffusers folder (e.g. Wan2.1-T2V-1.3B-Diffusers layout).")
    model_id: str = Field(default="tiny-wan", description="Name recorded in the ledger and cache key.")
    build_tiny_if_missing: bool = Field(
        default=True, description="Build the tiny random offline model at model_path if it is absent.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(default="auto", description="auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16")
    cpu_offload: bool = Field(default=False, description="Model CPU offload on CUDA (saves memory).")
    num_threads: int = Field(default=1, description="CPU threads; pinned for bit-identical renders.")
    default_width: int = 64
    default_height: int = 64
    default_num_frames: int = 9
    default_fps: int = 8

    def ensure_model(self) -> Path:
        path = Path(self.model_path)
        if not (path / "model_index.json").exists():
            if not self.build_tiny_if_missing:
                raise FileNotFoundError(f"no diffusers model at {path} (model_index.json missing)")
            from sora_assets.resources.tiny_wan import build_tiny_wan

            build_tiny_wan(path)
        return path

    def profile(self, resolve_revision: bool = True) -> ModelProfile:
        """Sizes and defaults; with `resolve_revision` the model folder is fingerprinted (built if absent)."""
        revision, scheduler = "unresolved", "unresolved"
        if resolve_revision:
            path = self.ensure_model()
            index = json.loads((path / "model_index.json").read_text())
            scheduler = index.get("scheduler", [None, "unknown"])[1]
            revision = model_fingerprint(path)
        return ModelProfile(model_id=self.model_id, revision=revision, scheduler=scheduler,
                            default_width=self.default_width, default_height=self.default_height,
                            default_num_frames=self.default_num_frames, default_fps=self.default_fps)

    def _device_and_dtype(self) -> tuple[str, Any]:
        import torch

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if self.dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            dtype = names[self.dtype]
        return device, dtype

    def pipeline(self) -> Any:
        """The loaded pipeline; loaded at most once per process for a given folder and device."""
        import torch
        from diffusers import DiffusionPipeline

        path = self.ensure_model()
        device, dtype = self._device_and_dtype()
        key = (str(path.resolve()), device, str(dtype), self.cpu_offload)
        with _CACHE_LOCK:
            if key not in _PIPELINES:
                torch.set_num_threads(self.num_threads)
                # DiffusionPipeline dispatches on model_index.json's class (WanPipeline here);
                # local_files_only guarantees no hub access.
                pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
                if device.startswith("cuda") and self.cpu_offload:
                    pipe.enable_model_cpu_offload(device=device)
                else:
                    pipe.to(device)
                pipe.set_progress_bar_config(disable=True)
                _PIPELINES[key] = pipe
                LOAD_COUNT["loads"] += 1
            return _PIPELINES[key]

    def render(self, spec: GenerationSpec) -> RenderResult:
        import torch

        pipe = self.pipeline()
        device, _ = self._device_and_dtype()
        synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        step_seconds: list[float] = []
        marks = {"last": 0.0}

        def on_step_end(_pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            latents = tensors["latents"]
            if not torch.isfinite(latents).all():
                raise NonFiniteLatentsError(step)
            synchronize()
            now = time.perf_counter()
            step_seconds.append(now - marks["last"])
            marks["last"] = now
            return tensors

        # CPU generator: the same seed gives the same initial noise on any device
        generator = torch.Generator(device="cpu").manual_seed(spec.seed)
        synchronize()
        start = marks["last"] = time.perf_counter()
        output = pipe(
            prompt=spec.prompt, negative_prompt=spec.negative_prompt or None, height=spec.height,
            width=spec.width, num_frames=spec.num_frames, num_inference_steps=spec.steps,
            guidance_scale=spec.guidance_scale, generator=generator, output_type="np",
            callback_on_step_end=on_step_end,
        )
        synchronize()
        end = time.perf_counter()
        frames = np.asarray(output.frames[0], dtype=np.float32)
        return RenderResult(frames=frames, gpu_seconds=end - start, steps_run=len(step_seconds),
                            step_seconds=step_seconds, decode_seconds=end - marks["last"], device=device)
