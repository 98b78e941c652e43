"""Train a recipe end to end on its real data and say where the time went.

Unlike ``train_step.py`` (one iteration on a synthetic batch), this runs ``Trainer.fit``: the data
pipeline, the steps, logging, sample grids, checkpoints and evaluation, as ``unpaired train``
does. It prints the trainer's loop timings (:class:`unpaired.loop.timing.LoopTimer`): seconds, ms per
iteration and share of the wall time of each part, and training pairs per second. The run goes
to a temporary directory unless ``--out`` keeps it.

    .venv/bin/python benchmarks/train_loop.py cyclegan-fashion --epochs 2
    .venv/bin/python benchmarks/train_loop.py cyclegan-fashion train.compile=true --epochs 2
    .venv/bin/python benchmarks/train_loop.py cyclegan data.args.root=datasets/horse2zebra train.max_iterations=50
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from unpaired.recipe.load import load_recipe
from unpaired.loop.trainer import Trainer


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help="recipe name or file")
    p.add_argument("overrides", nargs="*", help="key=value recipe overrides")
    p.add_argument("--epochs", type=int, help="train.epochs (default: the recipe's)")
    p.add_argument("--out", type=Path, help="keep the run here (default: a temporary directory)")
    p.add_argument("--json", type=Path, help="also write the timings to this JSON file")
    args = p.parse_args(argv)
    overrides = args.overrides + ([f"train.epochs={args.epochs}"] if args.epochs else [])
    with tempfile.TemporaryDirectory(prefix="unpaired-loop-") as tmp:
        out = args.out or Path(tmp) / "run"
        start = time.perf_counter()
        trainer = Trainer(load_recipe(args.recipe, overrides), out_dir=out)
        build_s = time.perf_counter() - start
        tr = trainer.recipe.train
        print(f"torch {torch.__version__} | {trainer.recipe.name} on {trainer.device} | precision "
              f"{trainer.executor.precision}, channels_last {tr.channels_last}, compile {tr.compile} | threads "
              f"{torch.get_num_threads()} | batch {trainer.recipe.data.batch_size}, {len(trainer.pairs)} pairs per epoch")
        result = trainer.fit()
    print(f"building the trainer (data check, networks): {build_s:.1f} s")
    print(trainer.timing_table())
    summary = trainer.timer.summary()
    if args.json:
        args.json.write_text(json.dumps({"recipe": trainer.recipe.name, "overrides": overrides, "build_s": build_s,
                                         "iterations": result.iteration, "pairs": trainer.samples, "timings": summary},
                                        indent=2))
    return summary


if __name__ == "__main__":
    main()
