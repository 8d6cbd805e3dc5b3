"""Build a random-weight pipeline with the Wan2.1-T2V-1.3B architecture, in the Diffusers folder layout.

The transformer and VAE use the published Wan2.1-T2V-1.3B-Diffusers configs (30 layers, 12 heads x 128,
ffn 8960, text_dim 4096; VAE base_dim 96). The UMT5 text encoder keeps the published width (d_model
4096, 64 heads) but only `--text-layers` layers and the tiny tokenizer's vocabulary: it runs once per
prompt, not per step, so it does not change seconds per denoising step, and a 5.7B-parameter random
encoder would only slow the build. Weights are saved in bf16 and sharded like the real folder.

The transformer and text encoder are built on the meta device and then filled in bf16 on `--device`
(no fp32 copy: the build peaks near the 3.5 GB it saves). On CUDA the fill is `normal_`; on CPU,
where drawing 1.8B normal numbers took 45 s on 2 cores, each weight is a window at a random offset
of one seeded 16M-value normal buffer: random enough to exercise loading, sharding and rendering,
in seconds. Either way every matrix is scaled to 1/sqrt(fan_in), norm weights are 1 and biases 0.

    python bench/build_wan13b.py /tmp/wan13b-random [--layers 30] [--text-layers 2] [--device cuda]
    bench/gpu_check.sh            # builds it (kept in .cache/gpu-check/ by `build_cached`, keyed by
                                  # `build_key`), renders bare, through the pipeline and with every preset
    python bench/overhead.py --model /tmp/wan13b-random --width 832 --height 480 --frames 81 --steps 4 --clips 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
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


def fill_random(module, device: str, seed: int) -> None:  # noqa: ANN001 - any torch module on the meta device
    """Materialise `module` on `device` in bf16 with random weights (see the module docstring)."""
    import torch

    module.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    pool = None if device.startswith("cuda") else torch.randn(1 << 24, generator=generator)
    pool = None if pool is None else torch.cat([pool, pool])  # a window at any offset is a plain slice
    scaled: dict[float, torch.Tensor] = {}  # one bf16 pool per fan-in: filling is then a memcpy per weight
    size = 1 << 24
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.ndim < 2:
                tensor.fill_(1.0 if "norm" in name else 0.0)
                continue
            scale = (tensor.numel() // tensor.shape[0]) ** -0.5
            if pool is None:
                tensor.normal_(0.0, scale, generator=generator)
                continue
            if scale not in scaled:
                scaled[scale] = (pool * scale).to(tensor.dtype)
            flat = tensor.view(-1)
            for offset in range(0, flat.numel(), size):
                start = int(torch.randint(0, size, (1,), generator=generator))
                chunk = min(size, flat.numel() - offset)
                flat[offset:offset + chunk].copy_(scaled[scale][start:start + chunk])


def build(target: Path, layers: int, text_layers: int, device: str = "cpu") -> Path:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from diffusers.utils import logging as diffusers_logging
    from transformers import UMT5Config, UMT5EncoderModel

    from sora_assets.resources.tiny_wan import _tokenizer

    diffusers_logging.disable_progress_bar()
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16: no fp32 copy of 1.3B weights in memory
    try:
        with torch.device("meta"):
            text_encoder = UMT5EncoderModel(UMT5Config(
                vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240, num_layers=text_layers, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", tie_word_embeddings=False))
            transformer = WanTransformer3DModel(**{**WAN13B_TRANSFORMER, "num_layers": layers})
    finally:
        torch.set_default_dtype(default_dtype)
    fill_random(text_encoder, device, seed=1)
    text_encoder.encoder.embed_tokens = text_encoder.shared  # tied, as built (to_empty gave each its own tensor)
    fill_random(transformer, device, seed=2)
    vae = AutoencoderKLWan(**WAN13B_VAE)  # fp32, as the published VAE folder is
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                       scheduler=scheduler)
    pipe.save_pretrained(target, max_shard_size="2GB")
    return target


def build_key(layers: int, text_layers: int, device: str) -> str:
    """What the built folder depends on: this script, the build arguments and the library versions.

    A cached folder is reused only under the same key, so editing the build or upgrading diffusers,
    transformers or torch rebuilds it."""
    from importlib.metadata import version  # not the packages themselves: importing them takes seconds

    material = json.dumps({"script": Path(__file__).read_bytes().decode(), "layers": layers,
                           "text_layers": text_layers, "device": device.split(":")[0],
                           "versions": [version(name) for name in ("torch", "diffusers", "transformers")]})
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def build_cached(cache: Path, layers: int, text_layers: int, device: str = "cpu") -> tuple[Path, float | None]:
    """The folder for these arguments under `cache`, built when missing; returns it and the build seconds
    (None when it was already there). Built next to its final name and renamed when complete, so an
    interrupted build is never reused."""
    target = cache / f"wan13b-{layers}l-{text_layers}t-{build_key(layers, text_layers, device)}"
    if (target / "model_index.json").is_file():
        return target, None
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    try:
        build(partial, layers, text_layers, device)
        try:
            partial.rename(target)
        except OSError:  # a concurrent run finished the same folder first: use that one
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    for stale in cache.glob(f"wan13b-{layers}l-{text_layers}t-*"):  # 3.9 GB each: one build per arguments
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)
    return target, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path)
    parser.add_argument("--layers", type=int, default=30, help="transformer layers (published: 30)")
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where the random weights are initialised (cpu | cuda)")
    args = parser.parse_args()
    started = time.perf_counter()
    build(args.target, args.layers, args.text_layers, args.device)
    params = sum(p.stat().st_size for p in (args.target / "transformer").glob("*.safetensors")) / 2 / 1e9
    print(f"built {args.target} in {time.perf_counter() - started:.1f} s; transformer ~{params:.2f}B params (bf16)")


if __name__ == "__main__":
    main()
