"""C2PA manifest definitions for generated clips."""

from __future__ import annotations

from typing import Any

from sora_assets import __version__

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_ASSERTION = "org.sora_assets.generation"


def clip_manifest(title: str, clip_id: str, model: str, model_revision: str, seed: int, steps: int,
                  prompt_sha256: str, cache_key: str) -> dict[str, Any]:
    """`c2pa.created` by a trained model, plus our generation assertion (no prompt text, only its hash)."""
    return {
        "claim_generator_info": [{"name": "sora_assets", "version": __version__}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": {"name": "sora_assets", "version": __version__},
            }]}},
            {"label": GENERATION_ASSERTION, "data": {
                "clip_id": clip_id, "model": model, "model_revision": model_revision, "seed": seed,
                "steps": steps, "prompt_sha256": prompt_sha256, "cache_key": cache_key,
            }},
        ],
    }
