"""Shared fixtures: tiny recipes on the embedded Fashion-MNIST subset, small image folders."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

from unpaired.recipe.load import load_recipe

#: The demo recipe shrunk to seconds: tiny networks, 32 images per domain, fp32, no workers.
TINY = [
    "data.args.limit=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "networks.G_AB.type=resnet",
    "networks.G_BA.type=resnet",
    "networks.G_AB.args.n_blocks=1",
    "networks.G_BA.args.n_blocks=1",
    "networks.G_AB.args.ngf=8",
    "networks.G_BA.args.ngf=8",
    "networks.D_A.args.ndf=8",
    "networks.D_B.args.ndf=8",
    "train.precision=fp32",
    "train.epochs=2",
    "train.scheduler.args.n_epochs=1",
    "train.scheduler.args.n_epochs_decay=1",
    "train.log_every=2",
    "train.sample_every=1000",
    "train.checkpoint_every=1000",
    "train.eval_every=null",  # tests that evaluate ask for it
    "device=cpu",
]


@pytest.fixture
def tiny_recipe(tmp_path):
    """``tiny_recipe(*overrides)``: the fashion demo at toy size, writing into tmp_path/run."""

    def make(*overrides):
        return load_recipe("cyclegan-fashion", TINY + [f"out_dir={tmp_path / 'run'}", *overrides])

    return make


def write_images(folder: Path, count: int, channels: int = 3, size: int = 16, seed: int = 0) -> list[Path]:
    """``count`` random PNG images (channels 1 or 3) of ``size`` x ``size`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    paths = []
    for i in range(count):
        img = torch.randint(0, 256, (channels, size, size), dtype=torch.uint8, generator=g)
        path = folder / f"img_{i:03d}.png"
        write_png(img, str(path))
        paths.append(path)
    return paths


@pytest.fixture
def image_root(tmp_path):
    """A dataset folder in the CycleGAN layout with 8 RGB images per domain and split."""
    root = tmp_path / "data"
    for i, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        write_images(root / sub, 8, seed=i)
    return root


def run_parallel(commands: dict, cwd: Path, env: dict, timeout: float) -> dict:
    """Run named commands at once (each a list of str/Path); ``{name: CompletedProcess}``, a
    command past ``timeout`` seconds killed (its output kept)."""
    procs = {k: subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE) for k, cmd in commands.items()}
    results = {}
    for k, p in procs.items():
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results[k] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return results


@contextmanager
def raises(error: type, code: str, key: str | None = None, says: tuple[str, ...] = ()):
    """``pytest.raises`` for this package's errors, asserting their fields rather than their prose:
    the error's ``code``, its ``key`` when given, and that the message names each fact in ``says``
    (a file, a number, a recipe key)."""
    with pytest.raises(error) as info:
        yield info
    assert info.value.code == code, (info.value.code, str(info.value))
    if key is not None:
        assert info.value.key == key, (info.value.key, str(info.value))
    for fact in says:
        assert fact in str(info.value), (fact, str(info.value))


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request) -> str:
    """Where a device-dependent test runs: the CPU, and CUDA when the machine has it (skipped
    otherwise). ``benchmarks/gpu.sh`` runs the CUDA cases with ``-m cuda``."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    return request.param
