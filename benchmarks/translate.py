"""Translation speed and memory: images/s and peak memory of the reference generator at 256x256 and 1024x1024.

Usage: python benchmarks/translate.py [--sizes 256,1024] [--batch 1] [--precision fp32] [--repeats 3]

Each configuration runs in a fresh process (peak memory is the process's peak resident set size,
VmHWM, over the run, minus the size before the first image), with the `cyclegan` recipe's
generator (resnet_9blocks, ngf 64, 3 channels, weights as initialised: speed does not depend on
them) through :class:`unpaired.inference.translator.Translator` on the CPU, untiled unless --tile is given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, re, time, torch
from pathlib import Path
from unpaired.engine.build import build_network
from unpaired.inference.translator import Translator
from unpaired.recipe import load_recipe, resolve
size, batch, precision, repeats, tile = {size}, {batch}, {precision!r}, {repeats}, {tile}
recipe = resolve(load_recipe("cyclegan", ["data.args.root=unused"]), checked=False)
torch.manual_seed(0)
net = build_network(recipe, recipe.networks["G_AB"]).eval()
t = Translator.from_networks(recipe, {{"G_AB": net}}, "AtoB", torch.device("cpu"))
t.tile, t.autocast_dtype = tile, {{"bf16": torch.bfloat16, "fp32": None}}[precision]
x = torch.rand(batch, 3, size, size) * 2 - 1
hwm = lambda: int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
before = hwm()
t(x)  # warm-up
start = time.perf_counter()
for _ in range(repeats):
    t(x)
seconds = (time.perf_counter() - start) / repeats
peak = hwm() - before
print(json.dumps({{"images_per_s": batch / seconds, "s_per_batch": seconds, "peak_mib": peak / 1024}}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,1024")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tile", type=int, default=0, help="tile side (0: whole image)")
    args = p.parse_args()
    print(f"resnet_9blocks ngf 64, batch {args.batch}, {args.precision}, tile {args.tile or 'off'}")
    print("| size | images/s | s per batch | peak memory (MiB) |\n|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        code = CHILD.format(size=size, batch=args.batch, precision=args.precision, repeats=args.repeats, tile=args.tile)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {size}x{size} | {r['images_per_s']:.2f} | {r['s_per_batch']:.2f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
