"""A tiny, randomly initialised Wan text-to-video pipeline, built offline from configs.

It is saved with `save_pretrained` in the same folder layout as Wan2.1-T2V-1.3B-Diffusers and then
loaded through the same `from_pretrained` path that loads real weights. Built under a fixed seed,
so every home renders identical frames.
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


def _tokenizer():
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
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.post_processor = TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    return T5TokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                           unk_token="<unk>", extra_ids=0)


def build_tiny_wan(target: Path) -> Path:
    """Build and save the tiny pipeline into `target` atomically (temp folder, then rename)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from diffusers.utils import logging as diffusers_logging
    from transformers import UMT5Config, UMT5EncoderModel
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # "Writing model shards" bars are noise in logs
    transformers_logging.disable_progress_bar()

    tokenizer = _tokenizer()
    torch.manual_seed(BUILD_SEED)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    # the scheduler real Wan2.1-1.3B ships
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=3.0)
    pipeline = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                           transformer=transformer)
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
