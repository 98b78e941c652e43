"""Data loading throughput: decoded-and-augmented images/s from a folder of JPEGs at 256x256.

Usage: python benchmarks/data_loading.py [--folder DIR] [--images 200] [--workers 0,1,2] [--epochs 3]

Without --folder it writes ``--images`` JPEGs of 400x300 (smooth synthetic photos, quality 90)
per domain into a temporary CycleGAN layout. Each configuration loads ``--epochs`` epochs through
the training path (``unaligned_folder`` with the reference's ``resize_and_crop`` 286 -> 256, random
flip; :class:`unpaired.data.UnalignedPairs`, :class:`unpaired.data.EpochSampler`, one persistent
``DataLoader`` as the trainer builds it), batch size 1, and prints images/s (two images per
sample: A and B), the first epoch (worker start-up included) and the later ones apart.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from unpaired.data.pairs import EpochSampler, UnalignedPairs
from unpaired_plugins.datasets.folder import UnalignedFolder


def write_jpegs(root: Path, count: int) -> None:
    """``count`` 400x300 JPEGs per domain in root/trainA and root/trainB."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:300, 0:400]
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        for i in range(count):
            f = rng.uniform(0.01, 0.05, 3)
            img = np.stack([127 + 120 * np.sin(f[c] * x + f[(c + 1) % 3] * y + i) for c in range(3)], -1)
            Image.fromarray(img.astype(np.uint8)).save(root / domain / f"{i:05d}.jpg", quality=90)


def measure(root: Path, workers: int, epochs: int) -> tuple[float, float]:
    """(images/s of the first epoch, images/s of the later ones) with ``workers`` processes."""
    data = UnalignedFolder(str(root), preprocess="resize_and_crop")
    pairs = UnalignedPairs(data.domain("A", "train"), data.domain("B", "train"))
    sampler = EpochSampler(len(pairs))
    loader = DataLoader(pairs, batch_size=1, sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    rates = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        n = sum(len(batch["real_A"]) for batch in loader)
        rates.append(2 * n / (time.perf_counter() - start))
    return rates[0], sum(rates[1:]) / max(1, len(rates) - 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", help="a dataset in the CycleGAN layout (trainA/, trainB/); default: synthetic JPEGs")
    p.add_argument("--images", type=int, default=200, help="synthetic images per domain")
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.folder) if args.folder else Path(tmp)
        if not args.folder:
            write_jpegs(root, args.images)
        print(f"{root}: 256x256 crops (resize_and_crop 286), batch 1, {args.epochs} epochs")
        print("| workers | first epoch (images/s) | later epochs (images/s) |\n|---:|---:|---:|")
        for w in (int(v) for v in args.workers.split(",")):
            first, later = measure(root, w, args.epochs)
            print(f"| {w} | {first:.0f} | {later:.0f} |")


if __name__ == "__main__":
    main()
