#!/usr/bin/env bash
# The main job: train CycleGAN on the embedded Fashion-MNIST sneakers <-> ankle boots, translate its
# test images both ways, and print their evaluation by the Fashion-MNIST judge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-runs/cyclegan-fashion-$(date +%Y%m%d-%H%M%S)}  # a new run directory each time
.venv/bin/unpaired train cyclegan-fashion --out "$RUN" "$@"
.venv/bin/unpaired translate "$RUN" --direction AtoB --out "$RUN/translated_AtoB"
.venv/bin/unpaired translate "$RUN" --direction BtoA --out "$RUN/translated_BtoA"
echo
.venv/bin/unpaired evaluate "$RUN"
echo
echo "Sample grids (rows: real A, fake B, reconstructed A, real B, fake A, reconstructed B): $RUN/samples/"
echo "Sneakers turned into boots: $RUN/translated_AtoB/   boots into sneakers: $RUN/translated_BtoA/"
echo "Losses: $RUN/log.jsonl  (TensorBoard: .venv/bin/tensorboard --logdir $RUN/tb)"
echo "Report (loss curves, sample grids over time, metrics): $RUN/report.html"
echo "Best epoch by target-class accuracy: $RUN/checkpoints/best (its scores in eval.json)"
