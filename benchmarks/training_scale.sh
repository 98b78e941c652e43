#!/usr/bin/env bash
# Translation at the training scale vs at the images' own size (docs/translate.md), measured:
# the reference CycleGAN recipe on Fashion-MNIST sneakers (A) <-> ankle boots (B), 500 training and
# 100 test images each (28 px, from the full set), trained at load_size 32 crop_size 32, seed 1; its
# test images translated (1) by default, (2) resized to 32 px first (judged at 32 px, and brought
# back to 28 px as translate does), (3) with --scale native; each folder judged by the Fashion-MNIST classifier (target-class accuracy, FID and KID in its features).
#
#   bash benchmarks/training_scale.sh [OUT] [EPOCHS]     # OUT default /tmp/training-scale, EPOCHS 6
#
# About 2.5 minutes an epoch on 2 CPU cores with bf16 (6 epochs: 15 minutes of training). Needs the full
# Fashion-MNIST set (apt-get install dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-/tmp/training-scale}")
EPOCHS=${2:-6}
PY=.venv/bin/python
U=.venv/bin/unpaired
mkdir -p "$OUT"

"$PY" - "$OUT" <<'PY'
import sys
from pathlib import Path
import torch
from torchvision.io import write_png
from torchvision.transforms import v2
from unpaired_plugins.datasets.fashion import load_split

out = Path(sys.argv[1])
for domain, label in (("A", 7), ("B", 9)):
    for split, n in (("train", 500), ("test", 100)):
        folder, resized = out / "data" / f"{split}{domain}", out / f"{split}{domain}_32"
        folder.mkdir(parents=True, exist_ok=True)
        resized.mkdir(exist_ok=True)
        for i, image in enumerate(load_split("/usr/share/datasets/fashion-mnist", split, label)[:n]):
            x = torch.from_numpy(image.copy())[None]
            write_png(x, str(folder / f"{i:04d}.png"))
            write_png(v2.functional.resize(x, [32, 32], interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                      str(resized / f"{i:04d}.png"))
PY

cat > "$OUT/sneaker-boot.yaml" <<EOF
base: cyclegan
name: sneaker-boot
seed: 1
data:
  args: {root: $OUT/data, channels: 1, load_size: 32, crop_size: 32}
  num_workers: 0
networks:
  G_AB: {args: {in_channels: 1, out_channels: 1}}
  G_BA: {args: {in_channels: 1, out_channels: 1}}
  D_A: {args: {in_channels: 1}}
  D_B: {args: {in_channels: 1}}
train:
  epochs: $EPOCHS
  scheduler: {type: linear, args: {n_epochs: $((EPOCHS / 2)), n_epochs_decay: $((EPOCHS - EPOCHS / 2))}}
  precision: auto
  log_every: 500
  checkpoint_every: 2500
eval:
  metrics: {classifier: {}, fid: {}, kid: {args: {subset_size: 100}}}
  features: {type: fashion_mnist}
  classifier: {type: fashion_mnist}
  classes: {A: Sneaker, B: Ankle boot}
EOF

RUN="$OUT/run"
[ -f "$RUN/run.json" ] || "$U" train "$OUT/sneaker-boot.yaml" --out "$RUN"
echo "| direction | translated | target accuracy | FID | KID |"
echo "|---|---|---:|---:|---:|"
for dir in AtoB BtoA; do
  src=$([ $dir = AtoB ] && echo testA || echo testB); tgt=$([ $dir = AtoB ] && echo testB || echo testA)
  rm -rf "$OUT/default_$dir" "$OUT/resized_$dir" "$OUT/native_$dir" "$OUT/back_$dir"
  "$U" translate "$RUN" --direction $dir --out "$OUT/default_$dir" >/dev/null
  "$U" translate "$RUN" --direction $dir --input "$OUT/${src}_32" --out "$OUT/resized_$dir" >/dev/null
  "$U" translate "$RUN" --direction $dir --scale native --out "$OUT/native_$dir" >/dev/null
  "$PY" - "$OUT/resized_$dir" "$OUT/back_$dir" <<'PY'
import sys
from pathlib import Path
from torchvision.io import read_image, write_png
from torchvision.transforms import v2
from unpaired.data.io import to_uint8

src, dst = Path(sys.argv[1]), Path(sys.argv[2])  # the 32 px translations back at 28 px, as translate does
dst.mkdir(exist_ok=True)
for f in sorted(src.glob("*.png")):
    x = read_image(str(f)).float()[None] / 127.5 - 1
    y = v2.functional.resize(x, [28, 28], interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
    write_png(to_uint8(y[0]), str(dst / f.name))
PY
  for kind in default back resized native; do
    "$U" evaluate --fake "$OUT/${kind}_$dir" --real "$OUT/data/$tgt" --recipe "$OUT/sneaker-boot.yaml" \
      --direction $dir --out "$OUT/eval_${kind}_$dir" >/dev/null
    "$PY" -c "
import json, sys
m = json.load(open('$OUT/eval_${kind}_$dir/metrics.json'))['metrics']['$dir']
label = {'default': 'by default (training scale)', 'back': 'resized to 32 px first, the output back to 28 px',
         'resized': 'resized to 32 px first (32 px out)', 'native': '--scale native (28 px)'}['$kind']
print(f\"| $dir | {label} | {m['target_accuracy']:.2f} | {m['fid']:.1f} | {m['kid']:.1f} |\")"
  done
done
