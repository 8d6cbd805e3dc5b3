"""The canonical generation spec and its cache key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest

from sora_assets.core.render.spec import MAX_SEED, SPEC_VERSION, GenerationSpec, derive_seed, normalize_prompt

BASE = GenerationSpec(
    prompt="a red fox running through fresh snow", negative_prompt="blurry", model_id="tiny-wan",
    model_revision="abc123", seed=42, steps=30, width=64, height=64, num_frames=9, fps=8,
    guidance_scale=5.0, scheduler="UniPCMultistepScheduler",
)


def test_normalize_prompt_collapses_whitespace_and_applies_nfc():
    assert normalize_prompt("  a \t red\n\nfox  ") == "a red fox"
    assert normalize_prompt("cafe\u0301") == "caf\u00e9"
    assert normalize_prompt("\u00a0a\u2003b\u3000") == "a b"  # unicode spaces count as whitespace
    assert normalize_prompt("") == ""


def test_cache_key_is_sha256_hex():
    assert re.fullmatch(r"[0-9a-f]{64}", BASE.cache_key())


def test_cache_key_is_stable():
    copy = GenerationSpec.from_dict(BASE.to_dict())
    assert copy.cache_key() == BASE.cache_key()
    assert BASE.cache_key() == BASE.cache_key()


@pytest.mark.parametrize("changes", [
    {"prompt": "  a red fox   running through\nfresh snow "},
    {"prompt": "a red fox running through fresh snow\t"},
    {"negative_prompt": " blurry  "},
    {"guidance_scale": 5},  # int vs float is not a different clip
    {"guidance_scale": 5.00001},  # below the 4-decimal rounding
])
def test_cache_key_ignores_presentation_differences(changes):
    assert dataclasses.replace(BASE, **changes).cache_key() == BASE.cache_key()


def test_cache_key_ignores_unicode_normalisation_form():
    nfc = dataclasses.replace(BASE, prompt="a caf\u00e9 at night")
    nfd = dataclasses.replace(BASE, prompt="a cafe\u0301 at night")
    assert nfc.cache_key() == nfd.cache_key()


@pytest.mark.parametrize("changes", [
    {"seed": 43}, {"steps": 31}, {"width": 80}, {"height": 80}, {"num_frames": 13}, {"fps": 16},
    {"model_revision": "def456"}, {"model_id": "other-model"}, {"guidance_scale": 5.5},
    {"guidance_scale": 5.001}, {"scheduler": "DDIMScheduler"}, {"prompt": "a red fox running through snow"},
    {"negative_prompt": ""}, {"prompt": "A red fox running through fresh snow"},
])
def test_cache_key_changes_with_any_generation_field(changes):
    assert dataclasses.replace(BASE, **changes).cache_key() != BASE.cache_key()


def test_width_and_height_are_not_interchangeable():
    a = dataclasses.replace(BASE, width=64, height=128)
    b = dataclasses.replace(BASE, width=128, height=64)
    assert a.cache_key() != b.cache_key()


def test_canonical_json_content():
    spec = dataclasses.replace(BASE, prompt="  un  caf\u00e9  ", guidance_scale=5.123456)
    data = json.loads(spec.canonical_json())
    assert data["spec_version"] == SPEC_VERSION
    assert data["prompt"] == "un caf\u00e9"
    assert data["guidance_scale"] == 5.1235
    # conditioning, preset and model family join only when set (text-to-video, exact, Wan): keys made before
    # them are unchanged
    assert set(data) == {f.name for f in dataclasses.fields(GenerationSpec)} - {"conditioning", "preset",
                                                                                "model_family"} | {"spec_version"}
    assert "\u00e9" in spec.canonical_json()  # not escaped
    assert spec.cache_key() == hashlib.sha256(spec.canonical_json().encode()).hexdigest()


def test_conditioning_enters_the_key_only_when_set():
    conditioned = dataclasses.replace(BASE, conditioning="image:" + "ab" * 32)
    other_image = dataclasses.replace(BASE, conditioning="image:" + "cd" * 32)
    assert json.loads(conditioned.canonical_json())["conditioning"] == "image:" + "ab" * 32
    assert len({BASE.cache_key(), conditioned.cache_key(), other_image.cache_key()}) == 3
    # text-only specs keep the cache keys they had before conditioning existed
    assert "conditioning" not in json.loads(BASE.canonical_json())
    assert GenerationSpec.from_dict(conditioned.to_dict()) == conditioned


def test_a_second_model_family_enters_the_key_and_the_dict_wan_keeps_both_unchanged():
    ltx = dataclasses.replace(BASE, model_family="ltx")
    assert json.loads(ltx.canonical_json())["model_family"] == "ltx" and ltx.cache_key() != BASE.cache_key()
    assert "model_family" not in BASE.to_dict() and "model_family" not in json.loads(BASE.canonical_json())
    assert GenerationSpec.from_dict(ltx.to_dict()) == ltx and GenerationSpec.from_dict(BASE.to_dict()) == BASE


def test_duration():
    assert BASE.duration_s == pytest.approx(9 / 8)
    assert dataclasses.replace(BASE, num_frames=81, fps=16).duration_s == pytest.approx(5.0625)


def test_prompt_sha256_ignores_whitespace_and_hides_text():
    spaced = dataclasses.replace(BASE, prompt=" a red fox  running through fresh snow\n")
    assert spaced.prompt_sha256() == BASE.prompt_sha256()
    assert re.fullmatch(r"[0-9a-f]{64}", BASE.prompt_sha256())
    assert BASE.prompt_sha256() == hashlib.sha256(b"a red fox running through fresh snow").hexdigest()
    assert BASE.prompt_sha256() != dataclasses.replace(BASE, prompt="another").prompt_sha256()


def test_from_dict_ignores_unknown_keys_and_round_trips():
    data = {**BASE.to_dict(), "cache_key": "x", "tier": "paid"}
    assert GenerationSpec.from_dict(data) == BASE
    with pytest.raises(TypeError):
        GenerationSpec.from_dict({"prompt": "only a prompt"})


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BASE.seed = 1  # type: ignore[misc]


def test_derive_seed_deterministic_and_whitespace_insensitive():
    assert derive_seed("a cat on a mat") == derive_seed("  a cat   on a mat ")
    assert derive_seed("a cat", "") == derive_seed("a cat")
    assert derive_seed("a cat", "blur") != derive_seed("a cat", "")
    assert derive_seed("a cat") != derive_seed("a dog")


def test_derive_seed_range_and_spread():
    seeds = [derive_seed(f"prompt number {i}") for i in range(500)]
    assert all(0 <= s <= MAX_SEED for s in seeds)
    assert len(set(seeds)) == len(seeds)
    assert max(seeds) > MAX_SEED // 2  # uses the upper half of the range too
