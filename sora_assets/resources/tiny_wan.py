"""Tiny, randomly initialised Wan text-to-video and image-to-video pipelines, built offline from configs.

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


def _text_and_vae(tokenizer):
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    return text_encoder, vae


def _transformer(in_channels: int, image_dim: int | None = None):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=image_dim)


def _scheduler():
    from diffusers import UniPCMultistepScheduler

    # the scheduler real Wan2.1 ships
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def build_tiny_wan(target: Path) -> Path:
    """Build and save the tiny text-to-video pipeline into `target` atomically (temp folder, then rename)."""
    import torch
    from diffusers import WanPipeline

    _quiet()
    tokenizer = _tokenizer()
    torch.manual_seed(BUILD_SEED)
    text_encoder, vae = _text_and_vae(tokenizer)
    pipeline = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=_scheduler(),
                           transformer=_transformer(in_channels=16))
    return _save(pipeline, target)


def build_tiny_wan_i2v(target: Path) -> Path:
    """The tiny image-to-video pipeline, in Wan2.1-I2V-14B-480P-Diffusers' layout.

    Like the real one: a CLIP vision encoder embeds the first frame (`image_dim`), and the transformer
    takes 36 channels (16 noise + 4 mask + 16 VAE-encoded condition frames).
    """
    import torch
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    _quiet()
    tokenizer = _tokenizer()
    torch.manual_seed(BUILD_SEED + 1)
    text_encoder, vae = _text_and_vae(tokenizer)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                     num_attention_heads=4, image_size=32, patch_size=8))
    pipeline = WanImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=_scheduler(),
        image_processor=CLIPImageProcessor(crop_size=32, size=32), image_encoder=image_encoder,
        transformer=_transformer(in_channels=36, image_dim=32))
    return _save(pipeline, target)


def _quiet() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # "Writing model shards" bars are noise in logs
    transformers_logging.disable_progress_bar()


def _save(pipeline, target: Path) -> Path:
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
