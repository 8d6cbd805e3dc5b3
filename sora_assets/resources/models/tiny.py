"""Shared parts of the tiny random offline stand-ins: a fixed tokenizer and an atomic `save_pretrained`.

Every tiny model is built from configs under a fixed seed, saved with `save_pretrained` and loaded back
through the same `from_pretrained(local_files_only=True)` path that loads real weights, so every home
renders identical frames.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

TOKENIZER_CORPUS = [
    "a cat walking on a beach at sunset", "a drone shot over snowy mountains at dawn",
    "a city street at night with neon lights and rain", "a red fox running through a forest",
    "slow motion waves crashing on rocks", "a chef cooking in a busy kitchen",
    "timelapse of clouds over a desert", "an astronaut floating inside a space station",
]
BUILD_SEED = 20261121
# Shard the text encoder and transformer as the real Wan2.1-T2V-1.3B-Diffusers folder does
# (model-0000N-of-0000M.safetensors + *.safetensors.index.json), so the sharded loading path is the default.
SHARD_BYTES = 64_000


def tokenizer():
    """A Unigram tokenizer with a fixed vocabulary: corpus words plus single characters.

    The vocabulary is written out rather than trained because `UnigramTrainer` is not
    reproducible run to run, and two homes must build byte-identical models.
    """
    import string

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import T5TokenizerFast

    words = sorted({word for line in TOKENIZER_CORPUS for word in line.split()})
    characters = sorted(set(string.ascii_letters + string.digits + string.punctuation))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + word, -5.0) for word in words]
    vocab += [(char, -10.0) for char in characters] + [("\u2581" + char, -10.5) for char in characters]
    built = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    built.normalizer = normalizers.NFKC()
    built.pre_tokenizer = pre_tokenizers.Metaspace()
    built.post_processor = TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", built.token_to_id("</s>"))])
    return T5TokenizerFast(tokenizer_object=built, pad_token="<pad>", eos_token="</s>",
                           unk_token="<unk>", extra_ids=0)


def quiet() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # "Writing model shards" bars are noise in logs
    transformers_logging.disable_progress_bar()


def save(pipeline, target: Path) -> Path:
    """`save_pretrained` into a temp folder beside `target`, then rename: a half-built model is never seen."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        pipeline.save_pretrained(staging, max_shard_size=SHARD_BYTES)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "model_index.json").exists():  # lost a race to a complete build: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
