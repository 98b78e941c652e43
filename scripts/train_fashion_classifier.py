"""Train the Fashion-MNIST judge (``classifier`` ``fashion_mnist``) on the full training set.

    OMP_NUM_THREADS=1 python scripts/train_fashion_classifier.py \\
        [--source /usr/share/datasets/fashion-mnist] [--epochs 8] [--zoom 33] [--flip] \\
        [--out plugins/classifiers/data/fashion_classifier.safetensors]

Needs the full set (``apt-get install dataset-fashion-mnist``). Trains
:class:`unpaired_plugins.classifiers.fashion.FashionCNN` on the 60,000 training images, inputs
``uint8 / 127.5 - 1`` as the datasets give them, with Adam and a cosine learning-rate decay,
seeded and deterministic on the CPU (same arguments, same weights). Augmentation (see
:func:`augment`): a zoom for half the batches (the framing of the demo's datasets), a 28x28 crop
within 2 pixels of the centre (no flip unless ``--flip``). Evaluates on the 10,000 test
images, as they are and in the demo's test view (resized to 32, centre-cropped to 28), prints
the overall and per-class accuracies, and writes the weights (float32 safetensors) with metadata.
``--limit N`` trains on the first N images only, for a quick check of the script.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unpaired.runs.checkpoint import file_sha256
from unpaired.data.preprocess import image_transform
from unpaired_plugins.classifiers.fashion import EMBEDDED, FashionCNN
from unpaired_plugins.datasets.fashion import CLASSES, IDX_FILES, _find, read_idx


def load(folder: Path, split: str):
    """Images (N, 1, 28, 28) float in [-1, 1], labels (N,) int64 and the images file's path."""
    img_path = _find(folder, IDX_FILES[split].format("images", 3))
    images = read_idx(img_path)
    labels = read_idx(_find(folder, IDX_FILES[split].format("labels", 1)))
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)[:, None]
    return x, torch.from_numpy(labels.astype(np.int64)), img_path


def augment(x: torch.Tensor, gen: torch.Generator, zoom: int = 33, flip: bool = False,
            pad: int = 2) -> torch.Tensor:
    """Training augmentation of a batch (N, 1, 28, 28) in [-1, 1].

    Half the batches keep the 28x28 scale, the others are first resized (bicubic, antialiased) to
    s x s, s drawn in 29..``zoom``: the datasets' "resize_and_crop" (28 -> 32, crop 28) shows the
    demo's images zoomed by 32/28, the edges task's (28 -> 36, crop 32) by 36/32 once resized back
    to 28, and translations come out framed so.
    Then a 28x28 crop within ``pad`` pixels of the centre (the image padded with background -1),
    and, if ``flip``, a horizontal flip for half the images (off by default: Fashion-MNIST items
    are consistently oriented, e.g. shoes point left, and translations keep the layout).
    """
    n, _, h, w = x.shape
    size = h
    if zoom > h and torch.rand(1, generator=gen).item() < 0.5:
        size = int(torch.randint(h + 1, zoom + 1, (1,), generator=gen))
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    padded = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    lo = (size - h) // 2  # offset of the centred crop in the padded image is lo + pad
    oy = lo + torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = lo + torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    if flip:
        flipped = torch.rand(n, generator=gen) < 0.5
        cols = torch.where(flipped[:, None, None], cols.flip(-1), cols)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    pred = torch.cat([model(x[i : i + batch].contiguous(memory_format=torch.channels_last)).argmax(1)
                      for i in range(0, len(x), batch)])
    correct = pred == y
    per_class = [float(correct[y == k].float().mean()) for k in range(len(CLASSES))]
    return float(correct.float().mean()), per_class, pred


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="/usr/share/datasets/fashion-mnist",
                   help="folder of Fashion-MNIST IDX files")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zoom", type=int, default=33, help="largest side of the zoom augmentation (28 = none)")
    p.add_argument("--flip", action="store_true", help="also flip horizontally (at random)")
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only (quick checks; 0 = all)")
    p.add_argument("--out", default=str(EMBEDDED))
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    source = Path(args.source)
    x_train, y_train, train_path = load(source, "train")
    x_test, y_test, _ = load(source, "test")
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, torch threads {torch.get_num_threads()}")

    model = FashionCNN().to(memory_format=torch.channels_last)  # faster convs and pooling on a CPU
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        seen, loss_sum, correct = 0, 0.0, 0
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            xb, yb = augment(x_train[idx], gen, args.zoom, args.flip), y_train[idx]
            xb = xb.contiguous(memory_format=torch.channels_last)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        acc, per_class, _ = evaluate(model, x_test, y_test)
        print(f"epoch {epoch}/{args.epochs}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f} | "
              f"test acc {acc:.4f} (5 {per_class[5]:.3f}, 7 {per_class[7]:.3f}, 9 {per_class[9]:.3f}) "
              f"[{time.time() - start:.0f}s]", flush=True)

    acc, per_class, pred = evaluate(model, x_test, y_test)
    # the demo's test view: the fashion_mnist dataset's resize to 32 and centre crop 28
    as_uint8 = ((x_test + 1) * 127.5).round().to(torch.uint8)
    demo_acc, demo_per_class, _ = evaluate(model, image_transform(32, 28, False, train=False)(as_uint8), y_test)
    print(f"\ntest accuracy {acc:.4f} on {len(y_test)} images "
          f"(in the demo's view, resized to 32 and centre-cropped to 28: {demo_acc:.4f})")
    for k, name in enumerate(CLASSES):
        confused = torch.bincount(pred[(y_test == k) & (pred != k)], minlength=len(CLASSES))
        top = int(confused.argmax())
        print(f"  {k} {name:12s} {per_class[k]:.4f} (demo view {demo_per_class[k]:.4f})   "
              f"(most often mistaken for {top} {CLASSES[top]}: {int(confused[top])})")

    meta = {
        "model": "unpaired_plugins.classifiers.fashion.FashionCNN",
        "classes": json.dumps(list(CLASSES)),
        "test_accuracy": json.dumps(round(acc, 4)),
        "test_accuracy_per_class": json.dumps([round(a, 4) for a in per_class]),
        "test_accuracy_demo_view": json.dumps(round(demo_acc, 4)),
        "test_accuracy_per_class_demo_view": json.dumps([round(a, 4) for a in demo_per_class]),
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "lr": str(args.lr),
        "zoom": str(args.zoom),
        "flip": json.dumps(args.flip),
        "seed": str(args.seed),
        "train_images": str(len(x_train)),
        "train_images_file": train_path.name,
        "train_images_sha256": file_sha256(train_path),
        "torch": torch.__version__,
        "input": "(N, 1, 28, 28) in [-1, 1] = uint8 / 127.5 - 1",
    }
    from safetensors.torch import save_file

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out), metadata=meta)
    out.chmod(0o644)  # safetensors writes 0600; a shipped data file is world-readable
    print(f"\nwrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
