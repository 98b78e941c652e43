"""Data-parallel training with torchrun (gloo on the CPU) equals one process with the global batch."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from unpaired.runs import checkpoint
from unpaired.recipe.load import load_recipe
from unpaired.loop.trainer import Trainer

from conftest import TINY

TORCHRUN = Path(sys.executable).with_name("torchrun")
# Pools are per rank (as in any data-parallel GAN), so they are off to compare with one process.
# SGD, because Adam turns rounding-level gradient differences on near-zero gradients into
# differences of a whole learning rate (its update is about lr * sign(g) there).
SAME = [*TINY, "steps.discriminators.losses.D_A.pool=0", "steps.discriminators.losses.D_B.pool=0",
        # Two steps, a checkpoint after each: the weights are compared after the first (where the two
        # runs differ by float rounding only, ~1e-8), the logged losses at both. Later, rounding
        # differences grow chaotically in freshly initialised GANs, by how much depends on the CPU's
        # kernels (2e-5 after the second step on one machine, 1e-8 on another).
        "train.max_iterations=2", "train.log_every=1", "train.checkpoint_every=1", "train.keep_checkpoints=2",
        *(f"steps.{s}.optimizer.{k}" for s in ("generators", "discriminators")
          for k in ("type=sgd", "args.lr=0.002", "args.betas=null"))]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.subprocess
def test_two_cpu_processes_match_one_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, "-m", "unpaired.cli", "train", "cyclegan-fashion", *SAME, "data.batch_size=4", "--out", str(one)])
    run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "unpaired.cli", "train", "cyclegan-fashion",
         *SAME, "data.batch_size=2", "--out", str(two)])
    a = load_file(str(one / "checkpoints/iter_00000001" / checkpoint.WEIGHTS))
    b = load_file(str(two / "checkpoints/iter_00000001" / checkpoint.WEIGHTS))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-6, worst
    init = {f"{n}.{k}": v for n, net in Trainer(load_recipe("cyclegan-fashion", SAME)).nets.items()
            for k, v in net.state_dict().items()}
    moved = max((a[k] - init[k]).abs().max().item() for k in a)
    assert moved > 1000 * worst, (moved, worst)
    # The logged losses are means over both ranks: they match the single process at both steps.
    la = (one / "log.jsonl").read_text().splitlines()
    lb = (two / "log.jsonl").read_text().splitlines()
    assert len(la) == len(lb) == 2
    for ra, rb in zip(map(json.loads, la), map(json.loads, lb)):
        for key in ra:
            if "/" in key and not key.startswith("lr/"):
                assert abs(ra[key] - rb[key]) < 1e-4, (key, ra[key], rb[key])
    # Only rank 0 wrote: one set of checkpoint directories, one log.
    assert sorted(p.name for p in (two / "checkpoints").iterdir() if p.name.startswith("iter_")) == [
        "iter_00000001", "iter_00000002"]


@pytest.mark.subprocess
def test_a_resumed_two_process_run_continues_exactly_with_each_ranks_pools(tmp_path):
    # Pools on (each rank keeps its own): stopped after 3 iterations and resumed, the run ends
    # where an uninterrupted one does.
    common = [*TINY, "train.log_every=1", "train.checkpoint_every=3", "data.batch_size=2",
              "steps.discriminators.losses.D_A.pool=2", "steps.discriminators.losses.D_B.pool=2"]  # full from step 1
    ddp = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "unpaired.cli", "train"]
    full, part = tmp_path / "full", tmp_path / "part"
    run([*ddp, "cyclegan-fashion", *common, "train.max_iterations=6", "--out", str(full)])
    run([*ddp, "cyclegan-fashion", *common, "train.max_iterations=3", "--out", str(part)])
    run([*ddp, "--resume", str(part), "train.max_iterations=6"])
    a = load_file(str(full / "checkpoints/iter_00000006" / checkpoint.WEIGHTS))
    b = load_file(str(part / "checkpoints/iter_00000006" / checkpoint.WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.subprocess
def test_a_fork_from_best_of_a_two_process_run_resumes_each_ranks_pools(tmp_path):
    """checkpoints/best goes through the same writer as every checkpoint: every rank's image pools
    are in it, so a fork from it continues exactly as the uninterrupted run (8 iterations an epoch:
    32 pairs, 2 ranks of 2; the evaluation at epoch 1 is the first, hence the best)."""
    common = [*TINY, "train.log_every=1", "data.batch_size=2", "train.eval_every=1", "eval.num_images=8",
              "eval.metrics.kid.args.subset_size=4", "train.report=false",
              "steps.discriminators.losses.D_A.pool=2", "steps.discriminators.losses.D_B.pool=2"]
    ddp = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "unpaired.cli", "train"]
    full, part, fork = tmp_path / "full", tmp_path / "part", tmp_path / "fork"
    run([*ddp, "cyclegan-fashion", *common, "train.max_iterations=11", "--out", str(full)])
    run([*ddp, "cyclegan-fashion", *common, "train.max_iterations=8", "--out", str(part)])
    assert json.loads((part / "checkpoints/best/eval.json").read_text())["iteration"] == 8
    assert len(torch.load(part / "checkpoints/best" / checkpoint.STATE, weights_only=True)["executor"]["pools_by_rank"]) == 2
    run([*ddp, "--resume", str(part / "checkpoints/best"), "--out", str(fork), "train.max_iterations=11"])
    a = load_file(str(full / "checkpoints/iter_00000011" / checkpoint.WEIGHTS))
    b = load_file(str(fork / "checkpoints/iter_00000011" / checkpoint.WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)
