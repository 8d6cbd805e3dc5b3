"""The text-to-video model: a real diffusers pipeline loaded with `from_pretrained` from a local folder."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.intake.prompt_rules import ModelProfile, TierPolicy
from sora_assets.core.render.acceleration import get_preset, tier_presets_from_text
from sora_assets.core.render.checkpoints import ClipCheckpoints, StepCheckpoint
from sora_assets.core.render.failures import ModelLoadError
from sora_assets.core.render.model_families import FAMILIES, LTX, WAN, resolve_family
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.render.spend import SpendJournal

if TYPE_CHECKING:
    from sora_assets.resources.step_callbacks import StepClock
from sora_assets.resources.models import ModelFamily, get_family

_CACHE_LOCK = threading.Lock()
_PIPELINES: dict[tuple[str, ...], Any] = {}
LOAD_COUNT = {"loads": 0}  # per process; tests use it to prove one load per run
_SAMPLED_HASH_BYTES = 4 * 1024 * 1024
TINY_I2V_FOLDER = FAMILIES[WAN].tiny_i2v_model_id
TINY_FOLDER = FAMILIES[WAN].tiny_model_id  # the tiny model's folder and id: `Home.default_model_path` names it
TINY_MODEL_ID = TINY_FOLDER
TINY_I2V_MODEL_ID = TINY_I2V_FOLDER
TINY_LTX_FOLDER = TINY_LTX_MODEL_ID = FAMILIES[LTX].tiny_model_id  # beside the tiny Wan model


class NonFiniteLatentsError(RuntimeError):
    """Latents went NaN/inf during denoising: the clip is stopped at once and not retried."""

    def __init__(self, step: int, clip_ids: list[str] | None = None, gpu_seconds: float = 0.0):
        who = f" for {', '.join(clip_ids)}" if clip_ids else ""
        super().__init__(f"non-finite latents after step {step}{who}")
        self.step = step
        self.clip_ids = clip_ids or []
        self.gpu_seconds = gpu_seconds


@dataclass
class RenderJob:
    """One clip to render: its spec, where its checkpoints live, and a checkpoint to resume from."""

    spec: GenerationSpec
    clip_id: str = "clip"
    checkpoints: ClipCheckpoints | None = None
    resume: StepCheckpoint | None = None
    image: np.ndarray | None = None  # uint8 (H, W, 3) first frame, for specs with `conditioning`
    spend: SpendJournal | None = None  # where this attempt journals its GPU-seconds, step by step


@dataclass(frozen=True)
class StepProgress:
    clip_ids: tuple[str, ...]
    step: int
    total: int
    checkpointed: bool
    resumed_from_step: int


ProgressCallback = Callable[[StepProgress], None]
Listeners = ProgressCallback | Sequence[ProgressCallback] | None  # passed to each render, never global
# the in-process subscribers (the demo's progress bar): `rendered_clips` passes them to each render with its own
# listener; `render_group` itself reads no global
PROGRESS_LISTENERS: list[ProgressCallback] = []


@contextmanager
def progress_listener(callback: ProgressCallback) -> Iterator[None]:
    """Receive every denoising step of renders in this process while the block runs."""
    PROGRESS_LISTENERS.append(callback)
    try:
        yield
    finally:
        PROGRESS_LISTENERS.remove(callback)


@dataclass
class RenderResult:
    frames: np.ndarray  # float32 (F, H, W, 3) in [0, 1]
    gpu_seconds: float  # this attempt: denoise + decode, synchronised on CUDA (a group's time is shared evenly)
    steps_run: int  # denoising steps in the clip, including those done before a resume
    step_seconds: list[float] = field(default_factory=list)  # steps computed in this attempt
    decode_seconds: float = 0.0
    device: str = "cpu"
    resumed_from_step: int = 0
    prior_gpu_seconds: float = 0.0  # spent on the resumed steps by the attempt that checkpointed them
    checkpoints_written: int = 0
    batch_size: int = 1

    @property
    def steps_computed(self) -> int:
        return len(self.step_seconds)

    @property
    def total_gpu_seconds(self) -> float:
        return self.prior_gpu_seconds + self.gpu_seconds


def shape_key(spec: GenerationSpec) -> tuple[Any, ...]:
    """Specs with equal keys can share one denoising batch."""
    return (spec.width, spec.height, spec.num_frames, spec.steps, spec.guidance_scale, spec.model_id,
            spec.model_revision, spec.conditioning, spec.preset)


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


class ModelMissingError(ModelLoadError, FileNotFoundError):
    """A configured model folder is absent or incomplete; never replaced by the tiny random model."""


def tiny_refusal(path: Path, model_id: str, tiny_folder: str, tiny_id: str, build: bool) -> str | None:
    """Why the tiny random model may NOT be built at `path` (None: it may).

    Only "no model configured at all" qualifies: the default tiny folder under the home's models/ and
    the tiny model's own id. Anything else (a typo in a real path, a real model id, a half-copied folder)
    would otherwise render noise under a real model's name, so it is an error instead.
    """
    if not build:
        return "building the tiny model is switched off for a configured model"
    if model_id != tiny_id:
        return f"model_id {model_id!r} names a real model; the tiny stand-in is built only when none is configured"
    if path.name != tiny_folder:
        return f"the tiny stand-in is built only in the default folder {tiny_folder!r}, not at a configured path"
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        return "the folder exists but is incomplete (a partial copy or download?); not building over it"
    return None


def check_model_folder(path: Path) -> None:
    """Fail early and clearly when a component that model_index.json lists has no folder or config."""
    index = json.loads((path / "model_index.json").read_text())
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        folder = path / name
        configs = ("config.json", "scheduler_config.json", "tokenizer_config.json", "tokenizer.json",
                   "preprocessor_config.json")
        if not folder.is_dir() or not any((folder / c).exists() for c in configs):
            raise FileNotFoundError(f"model folder {path} is missing component {name!r} ({spec[1]}), "
                                    "listed in its model_index.json")


MODEL_ENV = {  # environment switches for the default resource set (definitions, CLI, demo)
    "SORA_ASSETS_MODEL_PATH": "model_path", "SORA_ASSETS_MODEL_ID": "model_id", "SORA_ASSETS_DEVICE": "device",
    "SORA_ASSETS_DTYPE": "dtype", "SORA_ASSETS_CPU_OFFLOAD": "cpu_offload",
    "SORA_ASSETS_RENDER_BATCH_SIZE": "batch_size", "SORA_ASSETS_CHECKPOINT_EVERY": "checkpoint_every",
    "SORA_ASSETS_DEFAULT_SHAPE": "default_shape", "SORA_ASSETS_I2V_MODEL_PATH": "i2v_model_path",
    "SORA_ASSETS_I2V_MODEL_ID": "i2v_model_id", "SORA_ASSETS_TIER_PRESETS": "tier_presets",
    "SORA_ASSETS_MODEL_FAMILY": "model_family", "SORA_ASSETS_LTX_MODEL_PATH": "ltx_model_path",
    "SORA_ASSETS_LTX_MODEL_ID": "ltx_model_id",
}
_SHAPE = re.compile(r"^(\d+)x(\d+)x(\d+)@(\d+)$")


def model_settings_from_env(environ: Mapping[str, str], tiny_model_path: Path) -> dict[str, Any]:
    """VideoModelResource settings from SORA_ASSETS_* variables; unset ones keep the tiny defaults.

    A configured model path is never built over: a missing real model is an error, not a tiny stand-in.
    SORA_ASSETS_DEFAULT_SHAPE is WIDTHxHEIGHTxFRAMES@FPS (e.g. 832x480x81@16 for Wan2.1-1.3B).
    """
    settings: dict[str, Any] = {"model_path": str(tiny_model_path),
                                "i2v_model_path": str(tiny_model_path.parent / TINY_I2V_FOLDER),
                                "ltx_model_path": str(tiny_model_path.parent / TINY_LTX_FOLDER)}
    for name, key in MODEL_ENV.items():
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if key == "default_shape":
            match = _SHAPE.match(raw)
            if not match:
                raise ValueError(f"{name}={raw!r}: expected WIDTHxHEIGHTxFRAMES@FPS, e.g. 832x480x81@16")
            width, height, frames, fps = (int(g) for g in match.groups())
            settings.update(default_width=width, default_height=height, default_num_frames=frames, default_fps=fps)
        elif key == "cpu_offload":
            settings[key] = raw.lower() in ("1", "true", "yes", "on")
        elif key in ("batch_size", "checkpoint_every"):
            if not raw.isdigit():
                raise ValueError(f"{name}={raw!r}: expected a whole number")
            settings[key] = int(raw)
        else:
            settings[key] = raw
    if "SORA_ASSETS_MODEL_PATH" in environ and environ["SORA_ASSETS_MODEL_PATH"].strip():
        settings["build_tiny_if_missing"] = False
        settings.setdefault("model_id", Path(settings["model_path"]).name.lower())
        # a real text model must not be paired with the tiny random image model by accident
        settings["build_tiny_i2v_if_missing"] = False
        settings["build_tiny_ltx_if_missing"] = False  # nor with a tiny random second family
    if environ.get("SORA_ASSETS_I2V_MODEL_PATH", "").strip():
        settings["build_tiny_i2v_if_missing"] = False
        settings.setdefault("i2v_model_id", Path(settings["i2v_model_path"]).name.lower())
    if environ.get("SORA_ASSETS_LTX_MODEL_PATH", "").strip():
        settings["build_tiny_ltx_if_missing"] = False
        settings.setdefault("ltx_model_id", Path(settings["ltx_model_path"]).name.lower())
    if "model_family" in settings:
        settings["model_family"] = resolve_family(settings["model_family"]).name  # fails early on a typo
    return settings


class VideoModelResource(ConfigurableResource):
    """Loads a diffusers text-to-video pipeline once per process and renders specs with it."""

    model_path: str = Field(description="Local diffusers folder (e.g. Wan2.1-T2V-1.3B-Diffusers layout).")
    model_id: str = Field(default="tiny-wan", description="Name recorded in the ledger and cache key.")
    build_tiny_if_missing: bool = Field(
        default=True, description="Build the tiny random offline model at model_path if it is absent.")
    i2v_model_path: str = Field(
        default="", description="Image-to-video diffusers folder (Wan2.1-I2V layout) for rows with a first frame "
                                "(`image` or `continue_from`); empty: tiny-wan-i2v beside model_path.")
    i2v_model_id: str = Field(default="tiny-wan-i2v", description="Name of the image-to-video model.")
    build_tiny_i2v_if_missing: bool = Field(
        default=True, description="Build the tiny random image-to-video model at i2v_model_path if absent.")
    model_family: str = Field(
        default=WAN, description="Family of rows without a `model` column: wan (model_path, i2v_model_path) "
                                 "or ltx (ltx_model_path).")
    ltx_model_path: str = Field(
        default="", description="LTX-Video diffusers folder (text and first-frame conditioned); empty: tiny-ltx "
                                "beside model_path.")
    ltx_model_id: str = Field(default=TINY_LTX_MODEL_ID, description="Name of the LTX-Video model.")
    build_tiny_ltx_if_missing: bool = Field(
        default=True, description="Build the tiny random LTX-Video model at ltx_model_path if absent.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(default="auto", description="auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16")
    cpu_offload: bool = Field(default=False, description="Model CPU offload on CUDA (saves memory).")
    num_threads: int = Field(default=1, description="CPU threads; pinned for bit-identical renders.")
    default_width: int = 64
    default_height: int = 64
    default_num_frames: int = 9
    default_fps: int = 8
    free_tier_steps: int = Field(default=30, description="Denoising-step budget of the free tier.")
    paid_tier_steps: int = Field(default=50, description="Denoising-step budget of the paid tier.")
    free_tier_max_short_side: int = Field(default=480, description="Free-tier resolution cap (short side).")
    tier_presets: str = Field(
        default="", description="Acceleration preset per tier for rows without `preset`, e.g. free=fast,paid=exact "
                                "(names in core/render/acceleration.py; unlisted tiers render exact).")
    checkpoint_every: int = Field(default=10, description="Save a step checkpoint every k steps (0: never).")
    keep_checkpoints: int = Field(default=2, description="Checkpoints kept per clip (newest first).")
    batch_size: int = Field(default=1, description="Clips of identical shape denoised together (1: off).")
    progress_log_seconds: float = Field(
        default=30.0, description="Log a clip's progress at a checkpoint only if this long passed since its last "
                                  "progress line (each run-log line is a stored event with its own SQLite "
                                  "commit: 10-55 ms on a loaded VM, measured 2026-12-01).")

    def family(self, name: str | None = None) -> ModelFamily:
        """The plug-in of a family name (None: this deployment's `model_family`)."""
        return get_family(name or self.model_family)

    def family_model_id(self, family: str | None = None, conditioned: bool = False) -> str:
        plugin = self.family(family)
        if plugin.name == LTX:
            return self.ltx_model_id
        return self.i2v_model_id if conditioned else self.model_id

    def model_folder(self, conditioned: bool = False, family: str | None = None) -> Path:
        if self.family(family).name == LTX:  # one folder for text and first-frame conditioning
            return Path(self.ltx_model_path) if self.ltx_model_path else Path(self.model_path).parent / TINY_LTX_FOLDER
        if not conditioned:
            return Path(self.model_path)
        return Path(self.i2v_model_path) if self.i2v_model_path else Path(self.model_path).parent / TINY_I2V_FOLDER

    def ensure_model(self, conditioned: bool = False, family: str | None = None) -> Path:
        """The text-to-video folder, or with `conditioned` the image-to-video one, checked complete.

        The tiny random model is built only when no model is configured (see `tiny_refusal`); any other
        missing or incomplete folder raises `ModelMissingError` with a one-line reason.
        """
        plugin = self.family(family)
        path = self.model_folder(conditioned, plugin.name)
        if (path / "model_index.json").exists():
            try:
                check_model_folder(path)
            except (OSError, ValueError) as exc:
                raise ModelMissingError(" ".join(str(exc).split())) from exc
            return path
        if plugin.name == LTX:  # a real Wan model is never paired with a tiny random LTX
            refusal = (f"the Wan model {self.model_id!r} is real; configure ltx_model_path"
                       if self.model_id != TINY_MODEL_ID else
                       tiny_refusal(path, self.ltx_model_id, TINY_LTX_FOLDER, TINY_LTX_MODEL_ID,
                                    self.build_tiny_ltx_if_missing))
        elif conditioned:  # a real text model is never paired with the tiny random image model
            refusal = (f"the text model {self.model_id!r} is real; configure i2v_model_path"
                       if self.model_id != TINY_MODEL_ID else
                       tiny_refusal(path, self.i2v_model_id, TINY_I2V_FOLDER, TINY_I2V_MODEL_ID,
                                    self.build_tiny_i2v_if_missing))
        else:
            refusal = tiny_refusal(path, self.model_id, TINY_FOLDER, TINY_MODEL_ID, self.build_tiny_if_missing)
        if refusal is not None:
            raise ModelMissingError(f"no diffusers model at {path} (model_index.json missing): {refusal}")
        plugin.build_tiny(path, conditioned)
        return path

    def profile(self, resolve_revision: bool = True, conditioned: bool = False,
                family: str | None = None) -> ModelProfile:
        """Sizes (the family's grid) and defaults; with `resolve_revision` the model folder is fingerprinted
        (built if absent)."""
        plugin = self.family(family)
        revision, scheduler = "unresolved", "unresolved"
        if resolve_revision:
            path = self.ensure_model(conditioned, plugin.name)
            index = json.loads((path / "model_index.json").read_text())
            scheduler = index.get("scheduler", [None, "unknown"])[1]
            revision = model_fingerprint(path)
        return ModelProfile.for_family(
            plugin.constraints, model_id=self.family_model_id(plugin.name, conditioned), revision=revision,
            scheduler=scheduler, default_width=self.default_width, default_height=self.default_height,
            default_num_frames=plugin.constraints.snap_frames(self.default_num_frames), default_fps=self.default_fps)

    def tier_policy(self) -> TierPolicy:
        return TierPolicy(steps={"free": self.free_tier_steps, "paid": self.paid_tier_steps},
                          max_short_side={"free": self.free_tier_max_short_side},
                          presets=tier_presets_from_text(self.tier_presets))

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

    def pipeline(self, conditioned: bool = False, family: str | None = None) -> Any:
        """The loaded pipeline (text-to-video, or image-to-video with `conditioned`) of a family; loaded at most
        once per process for a given folder and device, through the same `from_pretrained` path for both."""
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        from sora_assets.resources.step_control import enable_step_control

        plugin = self.family(family)
        if conditioned and plugin.shares_folder():
            return self._image_pipeline_from_text(plugin)
        path = self.ensure_model(conditioned, plugin.name)
        device, dtype = self._device_and_dtype()
        key = (str(path.resolve()), device, str(dtype), self.cpu_offload)
        with _CACHE_LOCK:
            if key not in _PIPELINES:
                torch.set_num_threads(self.num_threads)
                diffusers_logging.disable_progress_bar()  # loading bars would flood run logs
                transformers_logging.disable_progress_bar()
                # the family picks the pipeline class (Wan: model_index.json's, via DiffusionPipeline);
                # local_files_only guarantees no hub access.
                try:
                    pipe = plugin.load(path, dtype)
                except Exception as exc:  # corrupt weights, wrong classes: no retry can fix the folder
                    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]  # one line for the run log
                    raise ModelLoadError(f"cannot load the model at {path}: {detail}") from exc
                if device.startswith("cuda") and self.cpu_offload:
                    pipe.enable_model_cpu_offload(device=device)
                else:
                    pipe.to(device)
                pipe.set_progress_bar_config(disable=True)
                enable_step_control(pipe)
                _PIPELINES[key] = pipe
                LOAD_COUNT["loads"] += 1
            return _PIPELINES[key]

    def _image_pipeline_from_text(self, plugin: ModelFamily) -> Any:
        """A family whose image pipeline takes the text pipeline's components: `from_pipe` shares the weights."""
        from sora_assets.resources.step_control import enable_step_control

        text = self.pipeline(False, plugin.name)
        key = (str(self.model_folder(False, plugin.name).resolve()), *self._device_key(), "image")
        with _CACHE_LOCK:
            if key not in _PIPELINES:
                pipe = plugin.pipeline_class(True).from_pipe(text)
                pipe.set_progress_bar_config(disable=True)
                _PIPELINES[key] = enable_step_control(pipe)
            return _PIPELINES[key]

    def _device_key(self) -> tuple[str, str, bool]:
        device, dtype = self._device_and_dtype()
        return device, str(dtype), self.cpu_offload

    def render(self, spec: GenerationSpec, clip_id: str = "clip", checkpoints: ClipCheckpoints | None = None,
               progress: ProgressCallback | None = None, failpoint_dir: Path | None = None,
               image: np.ndarray | None = None) -> RenderResult:
        """Render one clip (from `image` as first frame when the spec is conditioned), resuming from its newest
        valid checkpoint when there is one."""
        resume = checkpoints.latest(spec.cache_key(), spec.steps) if checkpoints else None
        job = RenderJob(spec, clip_id, checkpoints, resume, image)
        return self.render_group([job], progress=progress, failpoint_dir=failpoint_dir)[0]

    def render_group(self, jobs: list[RenderJob], progress: Listeners = None,
                     failpoint_dir: Path | None = None) -> list[RenderResult]:
        """Denoise clips of one shape together (one pipeline call); a resumed clip renders alone.

        Wraps the pipeline rather than copying its loop: `callback_on_step_end` is a MultiPipelineCallbacks of
        separate callbacks (check the latents, time the step, write checkpoints, report progress to the
        `progress` listeners passed in); the resume gate skips done steps.
        """
        if not jobs:
            return []
        if len({shape_key(j.spec) for j in jobs}) != 1:
            raise ValueError("a render group needs one shape (size, frames, steps, guidance, model)")
        if len(jobs) > 1 and any(j.resume for j in jobs):
            raise ValueError("a resumed clip renders alone: its batch-mates may have no checkpoint")
        preset = get_preset(jobs[0].spec.preset)
        if len(jobs) > 1 and preset.accelerated:
            # a cache hook decides per batch: batch-mates would change each other's frames
            raise ValueError("an accelerated clip renders alone: its cache decisions must not depend on batch-mates")
        conditioned = jobs[0].spec.conditioning is not None
        if conditioned and (len(jobs) > 1 or jobs[0].image is None):
            raise ValueError("a conditioned clip renders alone, with its first-frame image")
        return self._denoise(jobs, preset, progress, failpoint_dir)

    def _denoise(self, jobs: list[RenderJob], preset: Any, progress: Listeners,
                 failpoint_dir: Path | None) -> list[RenderResult]:
        """One pipeline call for the group; the step work is `resources/step_callbacks.py`'s callbacks."""
        import torch

        from sora_assets.resources.acceleration_hooks import preset_applied
        from sora_assets.resources.step_callbacks import StepClock
        from sora_assets.resources.step_control import resume_from

        spec, batch, resume = jobs[0].spec, len(jobs), jobs[0].resume
        conditioned = spec.conditioning is not None
        family = self.family(spec.model_family)
        pipe = self.pipeline(conditioned, family.name)
        device, _ = self._device_and_dtype()
        clock = StepClock(torch.cuda.synchronize if device.startswith("cuda") else (lambda: None))
        # CPU generators: the same seed gives the same initial noise on any device
        generators = [torch.Generator(device="cpu").manual_seed(j.spec.seed) for j in jobs]
        if resume is not None and resume.generator_state is not None:
            generators[0].set_state(resume.generator_state)
        callbacks, writer = self._step_callbacks(jobs, preset, clock, generators, progress, failpoint_dir, family)
        single = batch == 1
        clock.begin()
        with preset_applied(pipe, preset), \
                resume_from(pipe, resume.next_step if resume else 0, resume.scheduler_state if resume else None,
                            device):
            output = pipe(
                **({"image": _pil(jobs[0].image)} if conditioned else {}), **family.call_kwargs(spec),
                prompt=spec.prompt if single else [j.spec.prompt for j in jobs],
                negative_prompt=(spec.negative_prompt or None) if single
                else [j.spec.negative_prompt or "" for j in jobs],
                height=spec.height, width=spec.width, num_frames=spec.num_frames, num_inference_steps=spec.steps,
                guidance_scale=spec.guidance_scale, generator=generators[0] if single else generators,
                latents=resume.latents if resume else None, output_type="np", callback_on_step_end=callbacks,
            )
        clock.synchronize()
        end = time.perf_counter()
        frames = np.asarray(output.frames, dtype=np.float32)
        share = (end - clock.start) / batch
        for attempt in writer.attempts:
            if attempt is not None:
                attempt.record(spec.steps, share, finished=True)
        return [RenderResult(
            frames=frames[i], gpu_seconds=share, steps_run=spec.steps, step_seconds=list(clock.step_seconds),
            decode_seconds=end - clock.last, device=device, resumed_from_step=resume.next_step if resume else 0,
            prior_gpu_seconds=resume.gpu_seconds if resume else 0.0, checkpoints_written=writer.checkpoints.written,
            batch_size=batch) for i in range(batch)]

    def _step_callbacks(self, jobs: list[RenderJob], preset: Any, clock: StepClock, generators: list[Any],
                        progress: Listeners, failpoint_dir: Path | None,
                        family: ModelFamily) -> tuple[Any, Any]:
        """The NaN guard, step timer, checkpoint writer, hook refresh, progress fan-out and failpoint, in order."""
        from sora_assets.resources.acceleration_hooks import reset_cache_state
        from sora_assets.resources.step_callbacks import (
            CacheRefresh,
            CheckpointPlan,
            CheckpointWriter,
            NanGuard,
            ProgressFanOut,
            StepFailpoint,
            StepTimer,
            combined,
        )
        from sora_assets.resources.step_control import capture_scheduler_state

        total, resume = jobs[0].spec.steps, jobs[0].resume
        resumed_from = resume.next_step if resume else 0
        ids = tuple(j.clip_id for j in jobs)
        cache_keys = [j.spec.cache_key() for j in jobs]  # once, not at every checkpoint
        attempts = [j.spend.begin(cache_keys[i], resumed_from) if j.spend else None for i, j in enumerate(jobs)]
        # an accelerated clip checkpoints where its hook state is reset, whatever checkpoint_every says
        due = lambda step: preset.checkpoint_due(step, total, self.checkpoint_every)  # noqa: E731
        writer = CheckpointWriter(CheckpointPlan(
            due, total, [j.checkpoints for j in jobs], cache_keys, generators,
            resume.gpu_seconds if resume else 0.0, list(resume.step_seconds) if resume else []),
            clock, capture_scheduler_state, family)
        listeners = [progress] if callable(progress) else list(progress or [])
        callbacks = combined([
            StepTimer(clock, len(jobs), attempts), NanGuard(clock, ids, NonFiniteLatentsError), writer,
            CacheRefresh(lambda step: preset.refreshes_after(step, total), reset_cache_state),
            ProgressFanOut(listeners, lambda step, is_due: StepProgress(ids, step, total, is_due, resumed_from), due),
            StepFailpoint(failpoint_dir)])
        return callbacks, _Callbacks(writer, attempts)


@dataclass
class _Callbacks:
    """What `_denoise` reads back after the call: the checkpoint count and the spend records to close."""

    checkpoints: Any
    attempts: list[Any]


def _pil(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
