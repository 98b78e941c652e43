#!/usr/bin/env bash
# The main job: train CycleGAN on the embedded Fashion-MNIST sneakers <-> ankle boots, then
# translate its test images both ways. About 10 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-runs/cyclegan-fashion-$(date +%Y%m%d-%H%M%S)}  # a new run directory each time
.venv/bin/unpaired train cyclegan-fashion --out "$RUN" "$@"
.venv/bin/unpaired translate "$RUN" --direction AtoB --out "$RUN/translated_AtoB"
.venv/bin/unpaired translate "$RUN" --direction BtoA --out "$RUN/translated_BtoA"
echo
echo "Sample grids (rows: real A, fake B, reconstructed A, real B, fake A, reconstructed B): $RUN/samples/"
echo "Sneakers turned into boots: $RUN/translated_AtoB/   boots into sneakers: $RUN/translated_BtoA/"
echo "Losses: $RUN/log.jsonl  (TensorBoard: .venv/bin/tensorboard --logdir $RUN/tb)"
