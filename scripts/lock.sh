#!/usr/bin/env bash
# Regenerate requirements.lock from pyproject.toml (the package and its [dev] extra), fully pinned with hashes,
# for CPython 3.11 on Linux x86_64. torch is resolved against the local CPU wheel (so its dependencies are the
# CPU build's, no nvidia-* packages) and left out of the lock: the setup command installs it first.
#   bash scripts/lock.sh                      # re-resolve everything to the newest allowed versions
#   bash scripts/lock.sh --upgrade-package highspy   # move one dependency, keep every other pin
# Then: install the lock in a fresh venv (README "Upgrading a dependency") and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}   # the folder holding torch-2.13.0+cpu-*.whl
uv --version 2>/dev/null | grep -q "^uv $UV_VERSION" || python -m pip install -q "uv==$UV_VERSION"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0+cpu" > "$constraints"
# keep the current pins unless told to move them (uv reads them from the output file)
extra=()
[ "$#" -eq 0 ] && extra+=(--upgrade)
uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --generate-hashes --find-links "$TORCH_WHEELS" --constraint "$constraints" --no-emit-package torch \
  --custom-compile-command "bash scripts/lock.sh" --quiet "${extra[@]}" "$@" -o requirements.lock
echo "requirements.lock: $(grep -c '^[a-z0-9]' requirements.lock) packages pinned"
