"""Data-parallel training with torchrun (gloo on the CPU) equals one process with the global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from unpaired import checkpoint
from unpaired.recipe import load_recipe
from unpaired.trainer import Trainer

from conftest import TINY

TORCHRUN = Path(sys.executable).with_name("torchrun")
# Pools are per rank (as in any data-parallel GAN), so they are off to compare with one process.
# SGD, because Adam turns rounding-level gradient differences on near-zero gradients into
# differences of a whole learning rate (its update is about lr * sign(g) there).
SAME = [*TINY, "steps.discriminators.losses.D_A.pool=0", "steps.discriminators.losses.D_B.pool=0",
        # Two steps: beyond that, float rounding (1e-8 after one step, checked by hand) grows
        # chaotically in the freshly initialised networks, whatever the number of processes.
        "train.max_steps=2", "train.log_every=1",
        *(f"steps.{s}.optimizer.{k}" for s in ("generators", "discriminators")
          for k in ("type=sgd", "args.lr=0.002", "args.betas=null"))]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_two_cpu_processes_match_one_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, "-m", "unpaired.cli", "train", "cyclegan-fashion", *SAME, "data.batch_size=4", "--out", str(one)])
    run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "unpaired.cli", "train", "cyclegan-fashion",
         *SAME, "data.batch_size=2", "--out", str(two)])
    a = load_file(str(checkpoint.latest(one) / checkpoint.WEIGHTS))
    b = load_file(str(checkpoint.latest(two) / checkpoint.WEIGHTS))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, worst
    init = {f"{n}.{k}": v for n, net in Trainer(load_recipe("cyclegan-fashion", SAME)).nets.items()
            for k, v in net.state_dict().items()}
    moved = max((a[k] - init[k]).abs().max().item() for k in a)
    assert moved > 100 * worst, (moved, worst)
    # The logged losses are means over both ranks: they match the single process too.
    la = (one / "log.jsonl").read_text().splitlines()
    lb = (two / "log.jsonl").read_text().splitlines()
    assert len(la) == len(lb) == 2
    for ra, rb in zip(map(json.loads, la), map(json.loads, lb)):
        for key in ra:
            if "/" in key and not key.startswith("lr/"):
                assert abs(ra[key] - rb[key]) < 1e-4, (key, ra[key], rb[key])
    # Only rank 0 wrote: one checkpoint directory, one log.
    assert [p.name for p in (two / "checkpoints").iterdir() if p.name.startswith("step_")] == ["step_00000002"]
