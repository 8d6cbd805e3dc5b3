"""The canonical generation spec: what a clip is, byte for byte, and so its cache key."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any

from sora_assets.core.render.acceleration import EXACT, get_preset
from sora_assets.core.render.model_families import WAN

SPEC_VERSION = 1
MAX_SEED = 2**31 - 1
_WHITESPACE = re.compile(r"\s+")


def normalize_prompt(text: str) -> str:
    """NFC plus collapsed whitespace: prompts that differ only in spacing render the same clip."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def derive_seed(prompt: str, negative_prompt: str = "") -> int:
    """A deterministic seed for rows without one, so the same prompt always hits the cache."""
    material = f"seed-v1|{normalize_prompt(prompt)}|{normalize_prompt(negative_prompt)}"
    return int.from_bytes(hashlib.sha256(material.encode()).digest()[:4], "big") & MAX_SEED


@dataclass(frozen=True)
class GenerationSpec:
    prompt: str
    negative_prompt: str
    model_id: str
    model_revision: str
    seed: int
    steps: int
    width: int
    height: int
    num_frames: int
    fps: int
    guidance_scale: float
    scheduler: str
    # what conditions the first frame: "image:<sha256 of the file>" or "last_frame:<cache key of the shot it
    # continues>"; None for text-to-video (left out of the canonical form, so text-only cache keys are unchanged)
    conditioning: str | None = None
    # acceleration preset (core/render/acceleration.py); "exact" is left out of the canonical form, so every cache key
    # made before presets existed is unchanged, and any other preset keys by its name plus definition hash
    preset: str = EXACT
    # model family (core/render/model_families.py); Wan is left out of the canonical form and of `to_dict`, so every
    # cache key, sidecar and spec_json made before families existed is unchanged; any other family is keyed
    model_family: str = WAN

    def canonical(self) -> dict[str, Any]:
        # every field is a scalar, so a shallow copy equals `asdict` (whose deep copy was a third of deriving a
        # cache key: 1.2 s of a cold 50,000-row plan)
        data = {f.name: getattr(self, f.name) for f in _FIELDS}
        if self.conditioning is None:
            del data["conditioning"]
        if self.model_family == WAN:
            del data["model_family"]
        if self.preset == EXACT:
            del data["preset"]
        else:
            data["preset"] = get_preset(self.preset).fingerprint()
        data["prompt"] = normalize_prompt(self.prompt)
        data["negative_prompt"] = normalize_prompt(self.negative_prompt)
        data["guidance_scale"] = round(float(self.guidance_scale), 4)
        data["spec_version"] = SPEC_VERSION
        return data

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def cache_key(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def prompt_sha256(self) -> str:
        return hashlib.sha256(normalize_prompt(self.prompt).encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSpec:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.model_family == WAN:
            del data["model_family"]
        return data


_FIELDS = fields(GenerationSpec)
