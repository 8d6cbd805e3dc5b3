"""Why MagCache and FasterCache are not presets: probe both on a tiny WanTransformer3DModel, called the way
WanPipeline calls it (cond and uncond as two separate batch-1 forwards, not one batched CFG forward).

- MagCacheConfig needs `mag_ratios`, which are checkpoint- and scheduler-dependent (diffusers ships only
  Flux's); without them it refuses, and ratios calibrated on random weights would mean nothing.
- FasterCacheConfig assumes the unconditional and conditional inputs arrive in one batch (it splits the
  batch in two to reuse the uncond half); with Wan's separate calls it fails on the first forward.
- TextKVCacheConfig (lossless: text K/V projections computed once per prompt) hooks only NucleusMoE-Image
  blocks; on Wan it hooks no block, so it would change nothing.

    python bench/cache_probe.py      # prints one line per method; a few seconds on CPU
"""

from __future__ import annotations


def main() -> None:
    import diffusers
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    model = WanTransformer3DModel(num_layers=2, num_attention_heads=2, attention_head_dim=16, ffn_dim=64,
                                  text_dim=32, in_channels=4, out_channels=4, freq_dim=32, rope_max_seq_len=32)
    latents, cond, uncond = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 7, 32), torch.randn(1, 7, 32)
    try:
        diffusers.MagCacheConfig()
        print("MagCache: accepted a config without mag_ratios")
    except ValueError as exc:
        print(f"MagCache: refused without mag_ratios ({str(exc).splitlines()[0].strip()})")
    try:
        model.enable_cache(diffusers.TextKVCacheConfig())
        hooked = sum(1 for module in model.modules()
                     if getattr(module, "_diffusers_hook", None) is not None
                     and module._diffusers_hook.get_hook("text_kv_cache_block") is not None)
        print(f"TextKVCache: enabled on Wan, {hooked} of {len(model.blocks)} blocks hooked")
    except Exception as exc:  # noqa: BLE001
        print(f"TextKVCache: refused on Wan ({type(exc).__name__}: {exc})")
    finally:
        if model.is_cache_enabled:
            model.disable_cache()
    now = {"t": 999}
    model.enable_cache(diffusers.FasterCacheConfig(
        spatial_attention_block_skip_range=2, current_timestep_callback=lambda: now["t"],
        attention_weight_callback=lambda _module: 0.5, is_guidance_distilled=False))
    try:
        with torch.no_grad():
            for t in range(999, 0, -100):
                now["t"] = t
                for text in (cond, uncond):  # WanPipeline: one forward per CFG branch
                    model(hidden_states=latents, timestep=torch.tensor([t]), encoder_hidden_states=text,
                          return_dict=False)
        print("FasterCache: ran with separate cond/uncond forwards")
    except Exception as exc:  # noqa: BLE001 - the probe reports whatever the hook raises
        print(f"FasterCache: fails with separate cond/uncond forwards at t={now['t']} "
              f"({type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()
