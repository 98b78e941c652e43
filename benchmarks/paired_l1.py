"""Train a recipe on a paired task and print its test L1 to the true target after every epoch.

The evaluation is an ``unpaired_evaluate`` event handler (see docs/architecture.md): the
recipe's ``inference.AtoB`` image is computed for every test pair of the dataset (networks in
eval mode) and compared with the true B image: mean absolute error over all pixels, images in
[-1, 1]. It runs after each epoch, so the first row is the model after one epoch.

    .venv/bin/python benchmarks/paired_l1.py pix2pix-fashion                  # 6 epochs, ~4 min on 2 cores
    .venv/bin/python benchmarks/paired_l1.py pix2pix-fashion train.epochs=2 --json /tmp/l1.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from unpaired import hookimpl, load_recipe
from unpaired.inference.grid import compute_images
from unpaired.loop.trainer import Trainer


class PairedL1:
    """Test L1 between the translation of each test A image and its true B image."""

    def __init__(self, image: str = "fake_B", batch_size: int = 100):
        self.image, self.batch_size = image, batch_size

    @torch.no_grad()
    def l1(self, trainer) -> float:
        pairs = trainer.data.pairs("test", trainer.recipe.seed)
        total, count = 0.0, 0
        for start in range(0, len(pairs), self.batch_size):
            items = [pairs[i] for i in range(start, min(len(pairs), start + self.batch_size))]
            real_a = torch.stack([it["real_A"] for it in items]).to(trainer.device)
            real_b = torch.stack([it["real_B"] for it in items]).to(trainer.device)
            ex = trainer.executor
            fake = compute_images(ex.graph, ex.nets, [self.image], {"real_A": real_a})[self.image]
            total += (fake.float() - real_b).abs().mean().item() * len(items)
            count += len(items)
        return total / count

    @hookimpl
    def unpaired_epoch_end(self, trainer, epoch):
        trainer.history.append({"epoch": epoch, "step": trainer.iteration, "test_l1": self.l1(trainer)})
        print(f"epoch {epoch}: test L1 {trainer.history[-1]['test_l1']:.4f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe", nargs="?", default="pix2pix-fashion")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(load_recipe(args.recipe, [*args.overrides, f"out_dir={out}"]), hooks=[PairedL1()])
        start = time.time()
        trainer.fit()
        rows = [r for r in trainer.history if "test_l1" in r]
        print(f"\n{args.recipe}: {len(rows)} epochs in {time.time() - start:.0f} s")
        print("| epoch | iteration | test L1 |\n|---|---|---|")
        for r in rows:
            print(f"| {r['epoch']} | {r['step']} | {r['test_l1']:.4f} |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
