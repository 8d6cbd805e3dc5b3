#!/usr/bin/env bash
# The device check, in one call: build the Wan2.1-T2V-1.3B architecture with random weights
# (bench/build_wan13b.py: published transformer and VAE configs, text encoder at its published width with
# 2 layers), then render 2 clips bare, through the pipeline and with every acceleration preset
# (bench/gpu_check.py), printing s/step, pipeline / bare and each preset's speed-up.
#
#   bench/gpu_check.sh                 CUDA: 832x480x81, 8 steps, bf16 (designed for < 8 min on one H100)
#   bench/gpu_check.sh --cpu           CPU: the same 1.3B folder at 64x64x9, 2 steps, fp32, 1 clip, no CFG,
#                                      bare, pipeline and the `fast` preset (the CI slow test; ~8 GB RSS)
#   options: --model DIR (reuse or keep the built folder; default: a temp folder, removed afterwards)
#            --json PATH (also write the figures as JSON)   --clips N   --steps N
#
# Exit status: 0 when every render finished (on CPU also: the pipeline's exact frames equal the bare
# loop's; CUDA kernels need not be bit-reproducible, so there it is only reported), 2 for bad usage or
# no CUDA device in GPU mode.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=gpu model="" json="" clips="" steps=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode=cpu ;;
    --model) model="$2"; shift ;;
    --json) json="$2"; shift ;;
    --clips) clips="$2"; shift ;;
    --steps) steps="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
  build_device=cuda
  render=(--device cuda --dtype auto --width 832 --height 480 --frames 81 --steps "${steps:-8}" --clips "${clips:-2}")
else
  build_device=cpu
  # fp32: bf16 matmuls have no fast CPU kernel here (one transformer forward took 97 s in bf16, 11 s in fp32).
  # One clip, one preset, no CFG (guidance 1.0: one forward per step, one text encoding) and no warm-up: a CPU
  # forward of the 1.3B transformer is ~250 GFLOP at 64x64x9, mostly cross-attention over the 512-token text.
  render=(--device cpu --dtype float32 --width 64 --height 64 --frames 9 --steps "${steps:-2}" --clips "${clips:-1}"
          --presets fast --guidance 1.0 --no-warmup --require-identical)
fi

cleanup=""
if [ -z "$model" ]; then
  scratch="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
  model="$scratch/wan13b-random"
  cleanup="$scratch"
fi
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT

started=$(date +%s)
if [ ! -f "$model/model_index.json" ]; then
  python bench/build_wan13b.py "$model" --layers 30 --text-layers 2 --device "$build_device"
fi
python bench/gpu_check.py --model "$model" "${render[@]}" ${json:+--json "$json"}
echo "gpu_check ($mode) finished in $(( $(date +%s) - started )) s"
