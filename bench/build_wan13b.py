"""Build a random-weight pipeline with the Wan2.1-T2V-1.3B architecture, in the Diffusers folder layout.

The transformer and VAE use the published Wan2.1-T2V-1.3B-Diffusers configs (30 layers, 12 heads x 128,
ffn 8960, text_dim 4096; VAE base_dim 96). The UMT5 text encoder keeps the published width (d_model
4096, 64 heads) but only `--text-layers` layers and the tiny tokenizer's vocabulary: it runs once per
prompt, not per step, so it does not change seconds per denoising step, and a 5.7B-parameter random
encoder would only slow the build. Weights are saved in bf16 and sharded like the real folder.

    python bench/build_wan13b.py /tmp/wan13b-random [--layers 30] [--text-layers 2]
    python bench/overhead.py --model /tmp/wan13b-random --width 832 --height 480 --frames 81 --steps 4 --clips 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

WAN13B_TRANSFORMER = {  # transformer/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers
    "added_kv_proj_dim": None, "attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-06,
    "ffn_dim": 8960, "freq_dim": 256, "image_dim": None, "in_channels": 16, "num_attention_heads": 12,
    "num_layers": 30, "out_channels": 16, "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024, "text_dim": 4096,
}
WAN13B_VAE = {  # vae/config.json (the latents mean/std are AutoencoderKLWan's defaults, same as published)
    "attn_scales": [], "base_dim": 96, "dim_mult": [1, 2, 4, 4], "dropout": 0.0, "num_res_blocks": 2,
    "temperal_downsample": [False, True, True], "z_dim": 16,
}


def build(target: Path, layers: int, text_layers: int) -> Path:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from sora_assets.resources.tiny_wan import _tokenizer

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240, num_layers=text_layers, num_heads=64,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        dense_act_fn="gelu_new"))
    transformer = WanTransformer3DModel(**{**WAN13B_TRANSFORMER, "num_layers": layers})
    vae = AutoencoderKLWan(**WAN13B_VAE)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder.to(torch.bfloat16), vae=vae,
                       transformer=transformer.to(torch.bfloat16), scheduler=scheduler)
    pipe.save_pretrained(target, max_shard_size="2GB")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path)
    parser.add_argument("--layers", type=int, default=30, help="transformer layers (published: 30)")
    parser.add_argument("--text-layers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    build(args.target, args.layers, args.text_layers)
    params = sum(p.stat().st_size for p in (args.target / "transformer").glob("*.safetensors")) / 2 / 1e9
    print(f"built {args.target} in {time.perf_counter() - started:.1f} s; transformer ~{params:.2f}B params (bf16)")


if __name__ == "__main__":
    main()
