"""LTX-Video (text-to-video `LTXPipeline`, first-frame `LTXImageToVideoPipeline`) and its tiny stand-in.

Both pipelines take the same components (the first frame is encoded by the VAE, there is no image
encoder), so one folder in LTX-Video's diffusers layout serves both: the image pipeline is made from the
loaded text pipeline with `from_pipe`, sharing its weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sora_assets.core.render.model_families import FAMILIES, LTX
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.models.base import ModelFamily
from sora_assets.resources.models.tiny import BUILD_SEED, quiet, save, tokenizer

TINY_TEXT_DIM = 32


def _scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # the scheduler config Lightricks/LTX-Video ships: resolution-dependent (dynamic) shift
    return FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=1024, base_shift=0.95, max_image_seq_len=4096, max_shift=2.05, shift=1.0,
        shift_terminal=0.1, use_dynamic_shifting=True, time_shift_type="exponential")


def build_tiny_ltx(target: Path) -> Path:
    """A tiny random LTX-Video pipeline with the real model's compression (32x spatial, 8x temporal VAE:
    patch 4 and three space-time downsamplings), so the family's grid applies unchanged."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXPipeline, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    quiet()
    tok = tokenizer()
    torch.manual_seed(BUILD_SEED + 2)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tok), d_model=TINY_TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8))
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=4, patch_size_t=1)
    with torch.no_grad():
        # a random decoder's output is busy and uncorrelated (the frame scan's "noise", blocked): a quarter of
        # the contrast keeps it as grey as the tiny Wan's clips (luma std under 10), which the scan passes
        for parameter in vae.decoder.conv_out.parameters():
            parameter.mul_(0.25)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=12,
        cross_attention_dim=24, num_layers=2, caption_channels=TINY_TEXT_DIM)
    pipeline = LTXPipeline(tokenizer=tok, text_encoder=text_encoder, vae=vae, scheduler=_scheduler(),
                           transformer=transformer)
    return save(pipeline, target)


class LTXFamily(ModelFamily):
    constraints = FAMILIES[LTX]
    text_pipeline = "LTXPipeline"
    image_pipeline = "LTXImageToVideoPipeline"
    latent_ndim = 3  # the pipeline denoises packed latents (batch, tokens, channels)

    def load(self, path: Path, dtype: Any) -> Any:
        return self.pipeline_class(False).from_pretrained(str(path), dtype=dtype, local_files_only=True)

    def call_kwargs(self, spec: GenerationSpec) -> dict[str, Any]:
        # the frame rate scales the temporal RoPE: a clip must be rendered at the fps it is published at
        return {"frame_rate": spec.fps}

    def build_tiny(self, target: Path, conditioned: bool = False) -> Path:
        return build_tiny_ltx(target)  # one folder serves text and image conditioning
