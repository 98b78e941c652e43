"""Where one training iteration's time goes, by kind of work (torch.profiler).

Runs ``Executor.run_iteration`` on a synthetic batch (as ``train_step.py`` does) under
``torch.profiler`` and sums each operator's own time into kinds: convolutions, normalisation,
padding, activations, dtype casts and copies, the optimizer, losses and other element-wise
arithmetic, memory allocation, the autograd engine. ``framework`` is the iteration's wall time
that no operator accounts for: Python (the executor, the modules' ``forward``), the dispatcher
and autocast's bookkeeping between operators. The profiler adds some overhead of its own; the
first line gives the iteration time without it.

    .venv/bin/python benchmarks/profile_step.py cyclegan-fashion bf16
    .venv/bin/python benchmarks/profile_step.py cyclegan bf16 --size 32 --batch 16 \\
        --set networks.G_AB.type=resnet_6blocks networks.G_BA.type=resnet_6blocks \\
              networks.G_AB.args.ngf=32 networks.G_BA.args.ngf=32
    .venv/bin/python benchmarks/profile_step.py cyclegan-fashion bf16 --ops 15   # also the top operators
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from train_step import iteration_times, make_executor, recipe_overrides, synthetic_batch
from unpaired.recipe.load import load_recipe

#: Kinds of work by operator name, first match wins (an optimizer's operators are its own kind).
KINDS = [
    ("convolution", r"conv|mkldnn_convolution"),
    ("normalisation", r"batch_norm|instance_norm|group_norm|layer_norm"),
    ("padding", r"pad"),
    ("activations", r"relu|threshold|tanh|sigmoid|gelu|silu|clamp"),
    ("dtype casts and copies", r"copy|_to_copy|^aten::to$|contiguous|clone"),
    ("memory allocation", r"empty|resize|zeros|fill_"),
    ("autograd engine", r"^autograd::|Backward|AccumulateGrad"),
    ("losses and other element-wise", r"^aten::"),
]


def kind_of(name: str) -> str:
    return next((kind for kind, pattern in KINDS if re.search(pattern, name)), "other")


def in_optimizer(event) -> bool:
    """Whether an operator ran inside an optimizer's step or zero_grad."""
    while event is not None:
        if event.name.startswith("Optimizer."):
            return True
        event = event.cpu_parent
    return False


def breakdown(events, iterations: int, wall: float) -> dict[str, float]:
    """Seconds per iteration of each kind of work, ``framework`` the rest of ``wall``."""
    seconds: dict[str, float] = defaultdict(float)
    for e in events:
        seconds["optimizer" if in_optimizer(e) else kind_of(e.name)] += e.self_cpu_time_total / 1e6 / iterations
    seconds["framework (Python, dispatcher)"] = max(0.0, wall / iterations - sum(seconds.values()))
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe")
    p.add_argument("config", nargs="?", default="fp32", help="precision[+channels_last][+compile][+reference_calls][+torch_layers], as train_step.py")
    p.add_argument("--size", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--iters", type=int, default=5, help="profiled iterations (after 3 untimed, then 5 timed without the profiler)")
    p.add_argument("--ops", type=int, default=0, help="also print the N operators with the most own time")
    args = p.parse_args(argv)
    args.device = "cpu"
    with tempfile.TemporaryDirectory(prefix="unpaired-profile-") as tmp:
        recipe = load_recipe(args.recipe, recipe_overrides(args.recipe, args, Path(tmp), args.size, args.batch))
        ex = make_executor(recipe, args.config)
        recipe = ex.recipe
    batch, cpu = synthetic_batch(ex), torch.device("cpu")
    iteration_times(ex, batch, 3, cpu)  # warm-up
    plain = statistics.median(iteration_times(ex, batch, 5, cpu))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = sum(iteration_times(ex, batch, args.iters, cpu))
    parts = breakdown(prof.events(), args.iters, wall)
    print(f"{args.recipe} {args.config}, batch {recipe.data.batch_size}, {recipe.data.args.crop_size}x"
          f"{recipe.data.args.crop_size}, {torch.get_num_threads()} threads: {plain * 1000:.1f} ms/iteration "
          f"({wall / args.iters * 1000:.1f} under the profiler)")
    print(f"| {'kind of work':<32} | ms/it | share |\n|---|---:|---:|")
    for kind, sec in parts.items():
        print(f"| {kind:<32} | {sec * 1000:5.1f} | {100 * sec * args.iters / wall:4.1f} % |")
    if args.ops:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
    return parts


if __name__ == "__main__":
    main()
