"""C2PA manifest definitions for generated clips."""

from __future__ import annotations

from typing import Any

from sora_assets import __version__

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
SEQUENCE_ASSERTION = "org.sora_assets.sequence"
GENERATION_ASSERTION = "org.sora_assets.generation"


def clip_manifest(title: str, clip_id: str, model: str, model_revision: str, seed: int, steps: int,
                  prompt_sha256: str, cache_key: str, conditioning: str | None = None,
                  shot: dict[str, Any] | None = None, preset: str = "exact",
                  model_family: str = "wan") -> dict[str, Any]:
    """`c2pa.created` by a trained model, plus our generation assertion (no prompt text, only its hash).

    A conditioned clip also names its first frame (the image itself is added as an `inputTo` ingredient). `preset`
    names the acceleration it was rendered with, so a viewer can tell a cached-step render from an exact one."""
    generation: dict[str, Any] = {
        "clip_id": clip_id, "model": model, "model_revision": model_revision, "seed": seed,
        "steps": steps, "prompt_sha256": prompt_sha256, "cache_key": cache_key, "preset": preset,
    }
    if model_family != "wan":  # Wan manifests stay byte-identical to those made before families existed
        generation["model_family"] = model_family
    if conditioning:
        generation["conditioning"] = conditioning
    if shot:
        generation.update(shot_group=shot["group"], shot=shot["shot"])
    return _created_manifest(title, TRAINED_ALGORITHMIC_MEDIA, GENERATION_ASSERTION, generation)


def sequence_manifest(title: str, shot_group: str, shot_clip_ids: list[str], crossfade_frames: int, fps: int,
                      frames: int) -> dict[str, Any]:
    """A cut of signed shots: a composite of trained-model media whose ingredients are the shot clips."""
    return _created_manifest(title, COMPOSITE_WITH_TRAINED_MEDIA, SEQUENCE_ASSERTION, {
        "shot_group": shot_group, "shots": shot_clip_ids, "crossfade_frames": crossfade_frames, "fps": fps,
        "frames": frames})


def _created_manifest(title: str, source_type: str, label: str, data: dict[str, Any]) -> dict[str, Any]:
    """An MP4 `c2pa.created` by sora_assets from `source_type` media, with our own assertion `label`."""
    return {
        "claim_generator_info": [{"name": "sora_assets", "version": __version__}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": source_type,
                "softwareAgent": {"name": "sora_assets", "version": __version__},
            }]}},
            {"label": label, "data": data},
        ],
    }
