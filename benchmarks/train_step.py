"""Time one training iteration (all recipe steps) of the Executor under precision/layout options.

Synthetic batches (uniform in [-1, 1], shaped from the recipe's channels, crop_size and
batch_size) go straight to ``Executor.run_iteration``: no dataset, no run directory, so data loading
is not measured. A recipe that reads image folders (``cyclegan``) gets a throw-away dummy dataset
root, only so that the recipe validates. See benchmarks/README.md for the columns.

    .venv/bin/python benchmarks/train_step.py                      # both recipes, default configs
    .venv/bin/python benchmarks/train_step.py --recipes cyclegan-fashion --iters 3 --warmup 1
    .venv/bin/python benchmarks/train_step.py --recipes cyclegan --size 64 --iters 2 --warmup 1 --configs fp32 bf16
    .venv/bin/python benchmarks/train_step.py --recipes cyclegan --size 128 --json /tmp/bench.json
    .venv/bin/python benchmarks/train_step.py --device cuda        # adds fp16, bf16+channels_last+compile
    .venv/bin/python benchmarks/train_step.py --recipes cyclegan-fashion --threads 1   # a shared CPU
    .venv/bin/python benchmarks/train_step.py --recipes cyclegan --sizes 32:16 64:8 256:1 \
        --set networks.G_AB.args.ngf=32 --configs fp32 fp32+compile   # sizes with their batches, any override

Each row also gives the achieved GFLOP/s as a share of this machine's peak, measured by the same
script: the faster of a 4096x4096 matmul and a large 3x3 convolution, in fp32, and in bf16 where
the device computes it natively (the peak of the row's precision). With
``compile`` the warm-up iterations include the compilation; their extra time is its own column.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.io import write_png

from unpaired.runtime.device import native_bf16, pick_device
from unpaired.domains import domain_channels
from unpaired.recipe.load import load_recipe
from unpaired.engine.executor import Executor
from unpaired_plugins.networks import layers

CPU_CONFIGS = ["fp32", "bf16", "fp32+channels_last", "bf16+channels_last", "bf16+compile", "bf16+channels_last+compile"]
CUDA_CONFIGS = CPU_CONFIGS + ["fp16", "fp16+channels_last+compile"]
#: The authors' layer for ours, for ``reference_calls`` and ``torch_layers`` (ours differ in speed only).
TORCH_LAYERS = {layers.InstanceNorm2d: nn.InstanceNorm2d}
OPTIONS = ("channels_last", "compile", "reference_calls", "torch_layers")
BATCH_OF = {"cyclegan": 1}  # default batch per recipe (others: the recipe's own)
SIZE_OF = {"cyclegan": 256}


def config_overrides(config: str, recipe) -> list[str]:
    """'bf16+channels_last' -> precision bf16, channels_last on, compile off (every option set,
    so a recipe's own choices do not leak into the baseline). ``reference_calls`` calls the
    networks and the optimizer as the authors' code does: one call per pass
    (``train.batch_passes=false``) and Adam's per-parameter loop (``fused=false``, for the
    ``recipe``'s adam/adamw steps); without it both are the recipe's. :func:`make_executor` also
    gives it torch's instance-norm layer, which ``torch_layers`` alone gives too."""
    precision, *options = config.split("+")
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise SystemExit(f"unknown option(s) {sorted(unknown)} in config '{config}'; known: {', '.join(OPTIONS)}")
    over = [f"train.precision={precision}"] + [f"train.{o}={str(o in options).lower()}" for o in ("channels_last", "compile")]
    if "reference_calls" in options:
        over += ["train.batch_passes=false"] + [f"steps.{name}.optimizer.args.fused=false"
                                                for name, step in recipe.steps.items()
                                                if step.optimizer.type in ("adam", "adamw")]
    return over


def make_executor(recipe, config: str) -> Executor:
    """An Executor for ``recipe`` under ``config`` (:func:`config_overrides`). With
    ``reference_calls`` or ``torch_layers`` its networks' instance norms are torch's
    ``InstanceNorm2d``, as in the authors' code (ours runs as group norm on the CPU:
    plugins/networks/layers.py)."""
    executor = Executor(OmegaConf.merge(recipe, OmegaConf.from_dotlist(config_overrides(config, recipe))))
    if {"reference_calls", "torch_layers"} & set(config.split("+")):
        for net in executor.nets.values():
            for module in net.modules():  # no state of their own: a class swap is a layer swap
                module.__class__ = TORCH_LAYERS.get(type(module), type(module))
    return executor


def matmul_peak(dtype: torch.dtype, dev: torch.device, n: int = 4096) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` on ``dev``."""
    a, b = torch.rand(n, n, dtype=dtype, device=dev), torch.rand(n, n, dtype=dtype, device=dev)
    return _best_rate(lambda: a @ b, 2 * n**3, dev)


def conv_peak(dtype: torch.dtype, dev: torch.device) -> float:
    """FLOP/s of a large 3x3 convolution, (8, 256, 64, 64) * (256, 256, 3, 3), in ``dtype`` on ``dev``
    (oneDNN on the CPU, whose fp32 kernels can beat the BLAS that runs fp32 matmul)."""
    x = torch.rand(8, 256, 64, 64, dtype=dtype, device=dev)
    w = torch.rand(256, 256, 3, 3, dtype=dtype, device=dev)
    return _best_rate(lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * 8 * 256 * 64 * 64 * 256 * 9, dev)


def _best_rate(op, flops: int, dev: torch.device, repeats: int = 3) -> float:
    """``flops`` / seconds of ``op``: the best of ``repeats`` timings after one warm-up, each
    timing 10 calls on CUDA (asynchronous, so a single call is mostly launch latency), 1 on the CPU."""
    calls = 10 if dev.type == "cuda" else 1

    def run():
        start = time.perf_counter()
        for _ in range(calls):
            op()
        sync(dev)
        return time.perf_counter() - start

    run()
    return flops * calls / min(run() for _ in range(repeats))


def recipe_overrides(name: str, args, tmp: Path, size: int | None, batch: int | None) -> list[str]:
    """Device, batch and size overrides (and --set), plus a dummy data root if the recipe needs one."""
    base = load_recipe(name, args.set)
    data = base.data.args
    over = [f"device={args.device}", *args.set]
    batch = batch or BATCH_OF.get(name)
    if batch:
        over.append(f"data.batch_size={batch}")
    size = size or SIZE_OF.get(name)
    if size:
        load = max(int(data.get("load_size", size)), size)
        over += [f"data.args.crop_size={size}", f"data.args.load_size={load}"]
    if OmegaConf.is_missing(data, "root"):  # e.g. unaligned_folder: the recipe must name a root to validate
        root = tmp / f"data-{name}"
        for split in ("trainA", "trainB", "testA", "testB"):
            (root / split).mkdir(parents=True, exist_ok=True)
            write_png(torch.zeros(3, 32, 32, dtype=torch.uint8), str(root / split / "0.png"))
        over.append(f"data.args.root={root}")
    return over


def synthetic_batch(trainer: Executor) -> dict:
    data, dev = trainer.recipe.data, trainer.device
    chans, n, s = data.args.get("channels", 3), data.batch_size, data.args.crop_size
    g = torch.Generator().manual_seed(0)
    return {f"real_{d}": (torch.rand(n, domain_channels(chans, d), s, s, generator=g) * 2 - 1).to(dev)
            for d in "AB"}


def rss_kib(field: str) -> int:
    """VmRSS (current) or VmHWM (peak since the last reset) of this process, in KiB."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def reset_peak(dev: torch.device) -> int:
    """Reset the peak-memory counter; return the memory in use now (bytes)."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        return torch.cuda.memory_allocated(dev)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so RSS shows what is held
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to VmRSS (Linux >= 4.0)
    except OSError:
        pass
    return rss_kib("VmRSS") * 1024


def peak_memory(dev: torch.device) -> tuple[int, int]:
    """(peak bytes to report, peak bytes since reset_peak) for the device."""
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
        return peak, peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, rss_kib("VmHWM") * 1024


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def count_flops(recipe, tmp: Path) -> int:
    """FLOPs of one fp32 iteration (all steps' forward and backward passes)."""
    trainer = make_executor(recipe, "fp32")
    batch = synthetic_batch(trainer)
    with FlopCounterMode(display=False) as counter:
        trainer.run_iteration(batch)
    return counter.get_total_flops()


def build(recipe, config: str, args, dev: torch.device) -> dict:
    """A fresh Executor for ``recipe`` under ``config``, warmed up, with the memory it added and its first timings."""
    gc.collect()
    before = reset_peak(dev)
    executor = make_executor(recipe, config)
    batch = synthetic_batch(executor)
    warm = sum(iteration_times(executor, batch, args.warmup, dev))
    times = iteration_times(executor, batch, args.iters, dev)
    peak, peak_since = peak_memory(dev)
    return {"executor": executor, "batch": batch, "times": times, "warmup_s": warm, "warmup_iters": args.warmup,
            "peak_mem_bytes": peak, "mem_increase_bytes": max(0, peak_since - before)}


def iteration_times(executor: Executor, batch: dict, iters: int, dev: torch.device) -> list[float]:
    """Seconds of each of ``iters`` calls of ``Executor.run_iteration``."""
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        executor.run_iteration(batch)
        sync(dev)
        times.append(time.perf_counter() - start)
    return times


def summarise(run: dict, batch_size: int) -> dict:
    """The median iteration time (robust to an iteration stalled by another process) and the rest."""
    sec = statistics.median(run["times"])
    return {"s_per_iter": sec, "images_per_s": batch_size / sec, "iterations_timed": len(run["times"]),
            "warmup_extra_s": max(0.0, run["warmup_s"] - run["warmup_iters"] * sec),
            "peak_mem_bytes": run["peak_mem_bytes"], "mem_increase_bytes": run["mem_increase_bytes"]}


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    models = re.findall(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    return f"{models[0] if models else 'unknown CPU'} ({len(models)} logical CPUs)"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="+", default=["cyclegan", "cyclegan-fashion"])
    p.add_argument("--configs", nargs="+",
                   help="precision[+channels_last][+compile][+reference_calls][+torch_layers]; default by device")
    p.add_argument("--baseline", default="fp32", help="the config the speed-ups are relative to (default fp32)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--warmup", type=int, help="untimed iterations (default 3 CPU, 10 CUDA)")
    p.add_argument("--iters", type=int, help="timed iterations per round (default 10 CPU, 50 CUDA)")
    p.add_argument("--rounds", type=int, default=1,
                   help="time every config this many times, in turn (s/iter: the median of all timed iterations)")
    p.add_argument("--batch", type=int, help="batch size (default: 1 for cyclegan, else the recipe's)")
    p.add_argument("--size", type=int, help="crop size (default: 256 for cyclegan, else the recipe's)")
    p.add_argument("--sizes", nargs="+", help="several SIZE or SIZE:BATCH, e.g. 32:16 64:8 256:1 (instead of --size/--batch)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="recipe overrides for every row")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, i.e. the cores)")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    cuda = dev.type == "cuda"
    configs = args.configs or (CUDA_CONFIGS if cuda else CPU_CONFIGS)
    configs = sorted(configs, key=lambda c: c != args.baseline)  # the speed-up baseline first
    if args.warmup is None:
        args.warmup = 10 if cuda else 3
    if args.iters is None:
        args.iters = 50 if cuda else 10
    print(f"torch {torch.__version__} | device {dev}: {device_name(dev)} | threads {torch.get_num_threads()}"
          f" | warm-up {args.warmup}, timed {args.iters}")
    # bf16 only where the device computes it natively: emulated, one 4096^3 matmul takes minutes
    n = 8192 if cuda else 4096
    dtypes = {"fp32": torch.float32} | ({"bf16": torch.bfloat16} if native_bf16(dev) else {}) | (
        {"fp16": torch.float16} if cuda else {})
    matmul = {k: matmul_peak(t, dev, n) for k, t in dtypes.items()}
    conv = {k: conv_peak(t, dev) for k, t in dtypes.items()}
    peaks = {k: max(matmul[k], conv[k]) for k in dtypes}
    print(f"peak GFLOP/s, {n}x{n} matmul / 3x3 conv (the larger is % peak's): "
          + ", ".join(f"{k} {matmul[k] / 1e9:.0f} / {conv[k] / 1e9:.0f}" for k in dtypes)
          + ("" if "bf16" in peaks else " (bf16 is emulated on this CPU: no peak)"))
    mem = "peak alloc MiB" if cuda else "peak RSS MiB"
    head = f"{'recipe':<18}{'config':<28}{'batch':>5}{'size':>5}{'s/iter':>9}{'img/s':>8}{'speedup':>8}" \
           f"{'compile s':>10}{mem:>15}{'+MiB':>8}{'GFLOP/it':>10}{'GFLOP/s':>9}{'% peak':>8}"
    sizes = [tuple(int(v) for v in (s.split(":") + [0])[:2]) for s in args.sizes] if args.sizes else [(args.size, args.batch)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="unpaired-bench-") as tmpdir:
        tmp = Path(tmpdir)
        print(head + "\n" + "-" * len(head), flush=True)
        for name, (size, batch) in ((n, sb) for n in args.recipes for sb in sizes):
            base = load_recipe(name, recipe_overrides(name, args, tmp, size, batch or None))
            flops = count_flops(base, tmp)
            runs = {config: build(base, config, args, dev) for config in configs}
            for _ in range(args.rounds - 1):  # interleaved, so a slow phase of the machine hits every config
                for run in runs.values():
                    run["times"] += iteration_times(run["executor"], run["batch"], args.iters, dev)
            base_sec = None
            for config, run in runs.items():
                r = summarise(run, base.data.batch_size)
                base_sec = r["s_per_iter"] if config == args.baseline else base_sec
                row = {"recipe": name, "config": config, "batch": base.data.batch_size,
                       "size": base.data.args.crop_size, **r,
                       "speedup_vs_baseline": base_sec / r["s_per_iter"] if base_sec else None,
                       "flops_per_iter": flops, "flops_per_s": flops / r["s_per_iter"]}
                peak = peaks.get(config.split("+")[0])
                row["share_of_peak"] = row["flops_per_s"] / peak if peak else None
                rows.append(row)
                speed = f"{row['speedup_vs_baseline']:.2f}x" if base_sec else "-"
                share = f"{100 * row['share_of_peak']:.0f}%" if peak else "-"
                compile_s = f"{r['warmup_extra_s']:.1f}" if "compile" in config else "-"
                print(f"{name:<18}{config:<28}{row['batch']:>5}{row['size']:>5}{r['s_per_iter']:>9.4f}"
                      f"{r['images_per_s']:>8.2f}{speed:>8}{compile_s:>10}{r['peak_mem_bytes'] / 2**20:>15.0f}"
                      f"{r['mem_increase_bytes'] / 2**20:>8.0f}{flops / 1e9:>10.2f}{row['flops_per_s'] / 1e9:>9.1f}{share:>8}",
                      flush=True)
            del runs
    if args.json:
        meta = {"torch": torch.__version__, "device": str(dev), "device_name": device_name(dev),
                "threads": torch.get_num_threads(), "warmup": args.warmup, "iters": args.iters,
                "matmul_peak_flops": matmul, "conv_peak_flops": conv, "set": args.set}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
