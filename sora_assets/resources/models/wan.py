"""Wan2.1 (text-to-video `WanPipeline`, first-frame `WanImageToVideoPipeline`) and its tiny stand-ins.

The tiny models use the folder layout of Wan2.1-T2V-1.3B-Diffusers and Wan2.1-I2V-14B-480P-Diffusers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sora_assets.core.render.model_families import FAMILIES, WAN
from sora_assets.resources.models.base import ModelFamily
from sora_assets.resources.models.tiny import BUILD_SEED, quiet, save, tokenizer


def text_and_vae(tok):
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    return text_encoder, vae


def transformer(in_channels: int, image_dim: int | None = None):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=image_dim)


def scheduler():
    from diffusers import UniPCMultistepScheduler

    # the scheduler real Wan2.1 ships
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def build_tiny_wan(target: Path) -> Path:
    """Build and save the tiny text-to-video pipeline into `target` atomically (temp folder, then rename)."""
    import torch
    from diffusers import WanPipeline

    quiet()
    tok = tokenizer()
    torch.manual_seed(BUILD_SEED)
    text_encoder, vae = text_and_vae(tok)
    pipeline = WanPipeline(tokenizer=tok, text_encoder=text_encoder, vae=vae, scheduler=scheduler(),
                           transformer=transformer(in_channels=16))
    return save(pipeline, target)


def build_tiny_wan_i2v(target: Path) -> Path:
    """The tiny image-to-video pipeline, in Wan2.1-I2V-14B-480P-Diffusers' layout.

    Like the real one: a CLIP vision encoder embeds the first frame (`image_dim`), and the transformer
    takes 36 channels (16 noise + 4 mask + 16 VAE-encoded condition frames).
    """
    import torch
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    quiet()
    tok = tokenizer()
    torch.manual_seed(BUILD_SEED + 1)
    text_encoder, vae = text_and_vae(tok)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                     num_attention_heads=4, image_size=32, patch_size=8))
    pipeline = WanImageToVideoPipeline(
        tokenizer=tok, text_encoder=text_encoder, vae=vae, scheduler=scheduler(),
        image_processor=CLIPImageProcessor(crop_size=32, size=32), image_encoder=image_encoder,
        transformer=transformer(in_channels=36, image_dim=32))
    return save(pipeline, target)


class WanFamily(ModelFamily):
    constraints = FAMILIES[WAN]
    text_pipeline = "WanPipeline"
    image_pipeline = "WanImageToVideoPipeline"
    latent_ndim = 5

    def load(self, path: Path, dtype: Any) -> Any:
        from diffusers import DiffusionPipeline

        # DiffusionPipeline dispatches on model_index.json's class (WanPipeline, WanImageToVideoPipeline)
        return DiffusionPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)

    def build_tiny(self, target: Path, conditioned: bool = False) -> Path:
        return (build_tiny_wan_i2v if conditioned else build_tiny_wan)(target)
