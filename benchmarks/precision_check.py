"""Is bf16 training safe? Train the fashion demo in fp32 and in bf16 and compare the outcomes.

Both runs start from the same weights and see the same data. Reported per precision: the mean of
each loss term over the last logged window, and on the 200+200 test images the cycle-consistency
error |F(G(a)) - a| and |G(F(b)) - b| (mean L1, images in [-1, 1]) and the identity error,
evaluated in fp32. Prints the relative difference bf16 vs fp32.

    .venv/bin/python benchmarks/precision_check.py                 # 4 epochs each, ~5 min on 2 cores
    .venv/bin/python benchmarks/precision_check.py --epochs 2 --json /tmp/precision.json
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

from unpaired.recipe.load import load_recipe
from unpaired.inference.grid import compute_images
from unpaired.loop.trainer import Trainer


@torch.no_grad()
def test_errors(trainer: Trainer) -> dict[str, float]:
    """Mean L1 of the cycle and identity reconstructions on the test split, in fp32."""
    data = trainer.data
    sums = {"cycle_A": 0.0, "cycle_B": 0.0, "idt_A": 0.0, "idt_B": 0.0}
    pairs = {"cycle_A": ("rec_A", "real_A"), "cycle_B": ("rec_B", "real_B"),
             "idt_A": ("idt_A", "real_A"), "idt_B": ("idt_B", "real_B")}
    test_a, test_b = data.domain("A", "test"), data.domain("B", "test")
    n = min(len(test_a), len(test_b))
    for start in range(0, n, 50):
        idx = range(start, min(n, start + 50))
        inputs = {"real_A": torch.stack([test_a[i][0] for i in idx]).to(trainer.device),
                  "real_B": torch.stack([test_b[i][0] for i in idx]).to(trainer.device)}
        images = compute_images(trainer.executor.graph, trainer.nets, [p[0] for p in pairs.values()], inputs)
        for key, (made, real) in pairs.items():
            sums[key] += (images[made] - images[real]).abs().mean().item() * len(idx)
    return {f"test/{k}": v / n for k, v in sums.items()}


def run(precision: str, epochs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        recipe = load_recipe("cyclegan-fashion", [f"train.precision={precision}", f"train.epochs={epochs}",
                                                  f"train.scheduler.args.n_epochs={epochs // 2}",
                                                  f"train.scheduler.args.n_epochs_decay={epochs - epochs // 2}",
                                                  "train.log_every=125", f"out_dir={out}", "device=cpu"])
        trainer = Trainer(recipe)
        trainer.fit()
        last = {k: v for k, v in trainer.history[-1].items() if "/" in k and not k.startswith("lr/")}
        return {**last, **test_errors(trainer)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--json")
    args = p.parse_args()
    results = {prec: run(prec, args.epochs) for prec in ("fp32", "bf16")}
    print(f"fashion demo, {args.epochs} epochs, torch {torch.__version__}")
    print(f"{'metric':<28}{'fp32':>10}{'bf16':>10}{'rel. diff':>11}")
    for key in results["fp32"]:
        a, b = results["fp32"][key], results["bf16"][key]
        print(f"{key:<28}{a:>10.4f}{b:>10.4f}{(b - a) / abs(a):>+10.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"epochs": args.epochs, **results}, f, indent=1)


if __name__ == "__main__":
    main()
