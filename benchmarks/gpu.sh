#!/usr/bin/env bash
# The GPU checks, in one run (docs/performance.md, "GPU"): the CUDA paths of the training step at
# 256x256, batch 1 and batch 8 (fp32, bf16, fp16 with gradient scaling, compiled), their memory
# and the share of the GPU's bf16 matmul peak, a short end-to-end run, and the GPU tests.
#
# On a machine with PyTorch and CUDA but without this project's other dependencies (the lent H200
# has torch, timm, pluggy, tqdm, tensorboard, pillow, tifffile), first download their wheels here:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl omegaconf antlr4-python3-runtime kornia kornia_rs torch-fidelity
# and carry .whl there. Results (text and JSON) go to $OUT (default /tmp/unpaired-gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/unpaired-gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
# this package (its plugins register through the entry point) and the carried wheels, beside the machine's torch
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site $(ls .whl/*.whl 2>/dev/null) . || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
"$PY" - <<'EOF' | tee "$OUT/env.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
EOF
CONFIGS="fp32 bf16 fp16 bf16+channels_last fp16+channels_last bf16+compile bf16+channels_last+compile fp16+channels_last+compile"
"$PY" benchmarks/train_step.py --device cuda --recipes cyclegan --sizes 256:1 256:8 --configs $CONFIGS \
  --warmup 10 --iters 30 --rounds 2 --json "$OUT/train_step.json" 2>&1 | tee "$OUT/train_step.txt"
"$PY" benchmarks/train_loop.py cyclegan-fashion device=cuda train.precision=auto --epochs 2 \
  --json "$OUT/train_loop.json" 2>&1 | grep -v "it/s" | tee "$OUT/train_loop.txt"
"$PY" -m pytest -q -m cuda -rs tests 2>&1 | tail -15 | tee "$OUT/tests.txt"   # the device fixture's CUDA cases: precision, scaler, exact resume, NaN guard
