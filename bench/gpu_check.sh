#!/usr/bin/env bash
# The device check, in one call: build the Wan2.1-T2V-1.3B architecture with random weights
# (bench/build_wan13b.py: published transformer and VAE configs, text encoder at its published width with
# 2 layers, bf16, saved sharded with save_pretrained), load it with from_pretrained(local_files_only=True)
# through VideoModelResource, then render bare, through the pipeline and with the acceleration presets
# (bench/gpu_check.py), printing s/step, pipeline / bare and each preset's speed-up.
#
#   bench/gpu_check.sh                 GPU (one call on a CUDA machine; nothing else to install or fetch):
#                                      832x480x81, 8 steps, CFG 5, bf16, 2 clips, every preset, after a
#                                      1-step warm-up (designed for < 8 min on one H100-class GPU)
#   bench/gpu_check.sh --cpu           CPU: the same 1.3B folder at 64x64x9, 2 steps, 1 clip, no CFG, no
#                                      warm-up, bf16 (fp32 where the CPU has no bf16 kernels): bare, pipeline
#                                      and the `fast` preset (the CI slow test, sora_assets_tests/test_gpu_check.py)
#   options: --cache DIR (where the build is kept between runs, keyed by the build script, its arguments and
#                         the torch/diffusers/transformers versions; default .cache/gpu-check, gitignored)
#            --fresh      (build into a temp folder, removed afterwards)
#            --model DIR  (use this folder; built there when it has no model_index.json)
#            --json PATH (also write the figures as JSON)   --clips N   --steps N   --presets a,b|all
#
# Exit status: 0 when every render finished (on CPU also: the pipeline's exact frames equal the bare
# loop's; CUDA kernels need not be bit-reproducible, so there it is only reported), 2 for bad usage or
# no CUDA device in GPU mode.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=gpu model="" cache=".cache/gpu-check" fresh="" json="" clips="" steps="" presets=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode=cpu ;;
    --model) model="$2"; shift ;;
    --cache) cache="$2"; shift ;;
    --fresh) fresh=1 ;;
    --json) json="$2"; shift ;;
    --clips) clips="$2"; shift ;;
    --steps) steps="$2"; shift ;;
    --presets) presets="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

export MKL_CBWR=AUTO,STRICT PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ "$mode" = gpu ]; then
  if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA device visible to torch: run bench/gpu_check.sh --cpu on a machine without one" >&2
    exit 2
  fi
  render=(--device cuda --dtype auto --width 832 --height 480 --frames 81 --steps "${steps:-8}" --clips "${clips:-2}"
          --presets "${presets:-all}")
else
  # One clip, one preset, no CFG (guidance 1.0: one forward per step, one text encoding) and no warm-up.
  # dtype auto: bf16 where oneDNN has bf16 kernels (AVX512-BF16/AMX; ~4x faster than fp32 there and no fp32
  # copy of the weights), else fp32.
  # Passive OpenMP waits: on a shared, oversubscribed VM a spinning thread at a barrier burns the CPU its
  # partner needs (measured with the build reused, load 7-8: 17-19 CPU-s and 27-44 s wall, against 54 CPU-s
  # and 98 s spinning). Frames are the same either way.
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
  render=(--device cpu --dtype auto --width 64 --height 64 --frames 9 --steps "${steps:-2}" --clips "${clips:-1}"
          --presets "${presets:-fast}" --guidance 1.0 --no-warmup --require-identical)
fi

if [ -n "$fresh" ]; then
  cache="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
  trap 'rm -rf "$cache"' EXIT
fi

started=$(date +%s)
python bench/gpu_check.py ${model:+--model "$model"} --cache "$cache" --layers 30 --text-layers 2 "${render[@]}" \
  ${json:+--json "$json"}
echo "gpu_check ($mode) finished in $(( $(date +%s) - started )) s"
