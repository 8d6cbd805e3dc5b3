"""sora_assets: prompt batches in, signed and safety-scanned text-to-video clips out."""

import os

# Bit-identical renders across processes need MKL's conditional numerical reproducibility
# pinned before torch initialises (FIELD_NOTES: otherwise reloads differ by ~2e-7).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
# No code path may reach a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
