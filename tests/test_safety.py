"""Nothing lost, nothing silently wrong (issue 23): a full disk, two processes on one run, the
user's own files under --out, a resume on changed data or an edited recipe, an older checkpoint,
files that are not what they seem, and translation at the scale the model was trained on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import tifffile
import torch
from omegaconf import OmegaConf
from torch import nn
from torchvision.transforms import v2

from unpaired import CheckpointError, DataError, RecipeError, hookimpl
from unpaired.cli import main
from unpaired.data.check import probe
from unpaired.data.io import read_image
from unpaired.inference.batch import stretch
from unpaired.inference.translator import Translator
from unpaired.loop.trainer import Trainer
from unpaired.recipe.load import load_recipe
from unpaired.runs import checkpoint

from conftest import TINY, raises, write_images
from test_reliability import assert_same_weights, weights

SMALL = [f"networks.{n}.args.ngf=4" for n in ("G_AB", "G_BA")] + [f"networks.{n}.args.ndf=4" for n in ("D_A", "D_B")]


def folder_recipe(root: Path, out: Path, *overrides: str):
    """The reference CycleGAN at toy size on an image folder (RGB, 36 -> 32 crops)."""
    return load_recipe("cyclegan", [f"data.args.root={root}", "data.args.load_size=36", "data.args.crop_size=32",
                                    "data.num_workers=0", "device=cpu", f"out_dir={out}", *SMALL, *overrides])


# --- a full disk ---------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(kib)``: a fresh tmpfs of that size (unmounted after the test); skipped where
    this user cannot mount one (it needs root or CAP_SYS_ADMIN)."""
    mounted = []

    def make(kib: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): needs root")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system until ``leave`` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(free - leave, 1))


@pytest.fixture
def disk_filler(monkeypatch):
    """A plugin that fills the run's disk (leaving 16 KiB) once its first checkpoint is written."""
    mod = types.ModuleType("disk_filler")

    @hookimpl
    def unpaired_checkpoint_saved(trainer, path):
        if not mod.filled:
            fill(trainer.out_dir, 16 * 1024)
            mod.filled = True

    mod.filled = False

    mod.unpaired_checkpoint_saved = unpaired_checkpoint_saved
    monkeypatch.setitem(sys.modules, "disk_filler", mod)


@pytest.mark.slow
def test_a_disk_that_fills_during_training_stops_it_and_keeps_the_last_checkpoint(small_disk, disk_filler, capsys):
    run = small_disk(8 * 1024) / "run"
    code = main(["train", "cyclegan-fashion", *TINY, "plugins=[disk_filler]", "train.checkpoint_every=2",
                 "train.max_iterations=6", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 2, err  # was: a torch warning, exit 0
    first = run / "checkpoints" / "iter_00000002"
    assert f"writing checkpoint {run / 'checkpoints' / 'iter_00000004'} failed" in err
    assert "MiB free on" in err and f"the previous checkpoint {first} is intact" in err
    assert checkpoint.latest(run) == first and not list((run / "checkpoints").glob(".tmp-*"))
    (run / "filler").unlink()  # space freed: the run resumes from its last checkpoint
    assert Trainer.resume(run, ["train.max_iterations=4"]).fit().iteration == 4


@pytest.mark.slow
def test_translate_into_a_full_disk_counts_failures_and_leaves_no_partial_file(tiny_recipe, tmp_path, small_disk, capsys):
    run = Trainer(tiny_recipe("train.max_iterations=1")).fit().out_dir
    src = tmp_path / "in"
    write_images(src, 60, channels=1, size=64)
    out = small_disk(96)
    code = main(["translate", str(run), "--input", str(src), "--out", str(out), "--workers", "0"])
    summary = capsys.readouterr().out
    written = sorted(out.iterdir())
    assert code == 1  # was: "failed 0", exit 0, a truncated PNG
    assert f"translated {len(written)}, skipped 0, failed {60 - len(written)}" in summary
    assert 0 < len(written) < 60 and "No space left on device" in summary
    for path in written:  # every file there is whole
        assert read_image(path, 1).shape == (1, 64, 64), path


# --- one writer per run directory ----------------------------------------------------------------

@pytest.mark.subprocess
def test_a_second_process_on_a_run_is_refused_naming_the_first(tmp_path, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "unpaired.cli", "train", "cyclegan-fashion", *TINY,
                              "train.max_iterations=100000", "--out", str(run)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (run / ".lock").is_file() or "pid" not in (run / ".lock").read_text():
            assert time.time() < deadline and first.poll() is None, "the first training never started"
            time.sleep(0.2)
        assert main(["train", "cyclegan-fashion", *TINY, "--out", str(run)]) == 2
        err = capsys.readouterr().err
        assert f"{run} is being written by pid {first.pid} on " in err and "one run directory has one writer" in err
        with raises(CheckpointError, "locked", key=str(run), says=(f"pid {first.pid}",)):
            Trainer.resume(run)
    finally:
        first.kill()  # SIGKILL: the operating system drops the lock with the process
        first.wait()
    assert checkpoint.latest(run, missing_ok=True) is None  # killed before its first checkpoint
    Trainer(load_recipe("cyclegan-fashion", TINY + ["train.max_iterations=2", f"out_dir={run}"])).fit()
    assert checkpoint.latest(run).name == "iter_00000002"  # no stale lock after a kill


# --- the user's own files ------------------------------------------------------------------------

def test_out_holding_the_users_recipe_is_refused(tmp_path, monkeypatch, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    mine = "# my notes on this run\nbase: cyclegan-fashion\ntrain: {epochs: 1}\n"
    (proj / "recipe.yaml").write_text(mine)
    monkeypatch.chdir(proj)
    assert main(["train", "recipe.yaml", *TINY, "--out", "."]) == 2
    assert "holds recipe.yaml, which no run wrote" in capsys.readouterr().err
    assert (proj / "recipe.yaml").read_text() == mine and os.listdir(proj) == ["recipe.yaml"]


def test_out_inside_the_dataset_is_refused(tmp_path, image_root):
    before = sorted(p.relative_to(image_root) for p in image_root.rglob("*"))
    with raises(CheckpointError, "inside-data", says=(str(image_root),)):
        Trainer(folder_recipe(image_root, image_root / "trainA" / "run1")).fit()
    assert sorted(p.relative_to(image_root) for p in image_root.rglob("*")) == before  # nothing written there


# --- resume that follows what users do -----------------------------------------------------------

@pytest.mark.slow
def test_resume_on_fewer_images_mid_epoch_goes_on_with_the_next_epoch(tiny_recipe, capsys):
    # 32 pairs in batches of 4: stopped after 5 of 8 iterations (20 samples), resumed on 16 pairs
    first = Trainer(tiny_recipe("train.max_iterations=5"))
    first.fit()
    resumed = Trainer.resume(first.out_dir, ["data.args.limit=16", "train.max_iterations=9"])
    assert "the training data now gives 16 pairs an epoch, the run's had 32 pairs: epoch 1 ends at iteration 5 " \
           "and training goes on with epoch 2" in capsys.readouterr().err
    assert (resumed.iteration, resumed.epoch, resumed.epoch_iteration) == (5, 1, 0)
    assert resumed.executor.schedulers["generators"].last_epoch == 1  # the epoch that ended stepped the schedule
    assert resumed.fit().iteration == 9 and resumed.epoch == 2  # 4 iterations of 16 pairs: epoch 2 complete


@pytest.mark.slow
def test_resume_on_more_images_mid_epoch_goes_on_with_the_next_epoch(tiny_recipe, capsys):
    first = Trainer(tiny_recipe("train.max_iterations=5"))
    first.fit()
    resumed = Trainer.resume(first.out_dir, ["data.args.limit=48", "train.max_iterations=null"])
    assert "now gives 48 pairs an epoch, the run's had 32 pairs" in capsys.readouterr().err
    assert (resumed.iteration, resumed.epoch, resumed.epoch_iteration) == (5, 1, 0)
    assert len(resumed.sampler) == 48


@pytest.mark.slow
def test_a_changed_seed_on_resume_is_refused(tiny_recipe):
    run = Trainer(tiny_recipe("train.max_iterations=2")).fit().out_dir
    with raises(RecipeError, "fixed-on-resume", key="seed", says=("init_from.path=",)):
        Trainer.resume(run, ["seed=5", "train.max_iterations=4"])


@pytest.mark.slow
def test_an_edited_recipe_yaml_is_refused_on_resume_until_given_as_overrides(tiny_recipe):
    run = Trainer(tiny_recipe("train.max_iterations=2")).fit().out_dir
    edited = OmegaConf.load(run / "recipe.yaml")
    edited.train.log_every = 3
    OmegaConf.save(edited, run / "recipe.yaml")
    with raises(RecipeError, "edited-recipe", key=str(run / "recipe.yaml"), says=("train.log_every",)):
        Trainer.resume(run, ["train.max_iterations=4"])
    resumed = Trainer.resume(run, ["train.max_iterations=4", "train.log_every=3"])
    assert resumed.recipe.train.log_every == 3 and resumed.fit().iteration == 4
    assert OmegaConf.load(run / "recipe.yaml").train.log_every == 3


@pytest.mark.slow
def test_a_state_of_the_layout_before_the_executor_resumes_exactly(tiny_recipe, tmp_path):
    a = Trainer(tiny_recipe("train.max_iterations=3", f"out_dir={tmp_path / 'a'}")).fit().out_dir
    b = tmp_path / "b"
    Trainer(tiny_recipe("train.max_iterations=3", f"out_dir={b}")).fit()
    # b's state rewritten as the earliest release wrote it: executor parts beside the counters, step names
    file = checkpoint.latest(b) / checkpoint.STATE
    state = torch.load(file, weights_only=True)
    executor, counters = state.pop("executor"), state["counters"]
    state.pop("handlers")
    counters["step"], counters["epoch_step"] = counters.pop("iteration"), counters.pop("epoch_iteration")
    counters.pop("epoch_length")
    counters["nonfinite_total"] = executor.pop("nonfinite_total")
    state.update(executor)
    torch.save(state, file)
    (file.parent / checkpoint.SUMS).unlink()  # that release wrote no checksums
    Trainer.resume(a, ["train.max_iterations=6"]).fit()
    old = Trainer.resume(b, ["train.max_iterations=6"])  # was: KeyError: 'executor'
    assert (old.iteration, old.epoch_iteration) == (3, 3)
    old.fit()
    assert_same_weights(weights(a), weights(b))


# --- files that are what they seem ---------------------------------------------------------------

@pytest.mark.slow
def test_a_multi_page_tiff_is_refused_in_check_train_and_translate(tiny_recipe, tmp_path, image_root, capsys):
    stack = image_root / "trainA" / "stack.tif"
    tifffile.imwrite(stack, np.random.default_rng(0).integers(0, 65535, (5, 16, 16), dtype=np.uint16))
    hyper = tmp_path / "in" / "hyperstack.tif"
    hyper.parent.mkdir()
    tifffile.imwrite(hyper, np.zeros((3, 2, 16, 16), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    assert "a TIFF of 5 pages (an image stack)" in probe(stack).error
    with raises(DataError, "multi-page", key=str(hyper), says=("a TIFF of 6 pages",)):
        read_image(hyper, 1)

    assert main(["data", "check", str(image_root)]) == 1
    assert "stack.tif: a TIFF of 5 pages" in capsys.readouterr().out
    with raises(DataError, "bad-files", says=("stack.tif", "a TIFF of 5 pages")):
        Trainer(folder_recipe(image_root, tmp_path / "run")).fit()

    run = Trainer(tiny_recipe("train.max_iterations=1")).fit().out_dir
    capsys.readouterr()
    assert main(["translate", str(run), "--input", str(hyper.parent), "--out", str(tmp_path / "o"), "--workers", "0"]) == 1
    assert "translated 0, skipped 0, failed 1" in capsys.readouterr().out


@pytest.mark.slow
def test_skip_covers_a_float_tiff_whose_pixels_are_nan(tmp_path, image_root, capsys):
    pixels = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    pixels[3, 4] = np.nan
    tifffile.imwrite(image_root / "trainA" / "nan.tif", pixels)
    assert "1 pixel value(s) are NaN or infinite" in probe(image_root / "trainA" / "nan.tif").error
    trainer = Trainer(folder_recipe(image_root, tmp_path / "run", "data.on_bad_file=skip", "train.max_iterations=9"))
    assert trainer.fit().iteration == 9  # was: diverged at iteration 1
    assert "skipped 1 unreadable training image(s)" in capsys.readouterr().err and len(trainer.sampler) == 8


# --- translation at the training scale -----------------------------------------------------------

@pytest.mark.slow
def test_translate_resizes_to_the_training_scale_and_back(tiny_recipe, tmp_path, capsys):
    run = Trainer(tiny_recipe("train.max_iterations=1")).fit().out_dir  # 28 px images trained at load_size 32
    default, native = Translator(run, "AtoB", "cpu"), Translator(run, "AtoB", "cpu", scale="native")
    assert default.size_for(28, 28) == (32, 32) and native.size_for(28, 28) == (28, 28)
    assert default.size_for(100, 60) == (32, 32)  # resize_and_crop resizes to a square, as in training
    resize = lambda x, size: v2.functional.resize(x, size, interpolation=v2.InterpolationMode.BICUBIC,
                                                  antialias=True).clamp(-1, 1)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        y = default(x)
        assert y.shape == x.shape
        assert torch.allclose(y, resize(native(resize(x, [32, 32])), [28, 28]), atol=1e-6)
        assert (y - native(x)).abs().max() > 0.01  # the two scales differ

    src = tmp_path / "in"
    write_images(src, 1, channels=1, size=128)
    assert stretch((100, 1000), (286, 286)) == pytest.approx(0.286) and stretch((20, 20), (10, 10)) == 0.5
    PIL.Image.new("L", (40, 10)).save(src / "wide.png")  # its area grows only x1.6, its height x3.2
    PIL.Image.new("L", (30, 26)).save(src / "near.png")  # x1.07 to x1.23: no note
    capsys.readouterr()
    assert main(["translate", str(run), "--input", str(src), "--out", str(tmp_path / "o"), "--workers", "0"]) == 0
    assert "note: 2 image(s) translated at the training scale (resize_and_crop: 32x32), resized by x0.25 to x3.20" \
           in capsys.readouterr().out
    assert read_image(tmp_path / "o" / "img_000.png", 1).shape == (1, 128, 128)


# --- settings and papercuts ----------------------------------------------------------------------

def test_recipe_check_runs_the_documented_rectangular_crops(image_root, capsys):
    assert main(["recipe", "check", "cyclegan", f"data.args.root={image_root}", "data.args.crop_size=[32,48]",
                 "data.args.load_size=[36,52]", *SMALL, "device=cpu"]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("spectral_norm", [nn.utils.spectral_norm, nn.utils.parametrizations.spectral_norm])
def test_init_reaches_the_weight_under_spectral_norm(spectral_norm):
    from unpaired_plugins.networks.init import normal

    torch.manual_seed(0)
    layer = spectral_norm(nn.Conv2d(16, 64, 3))
    trained = layer.weight_orig if hasattr(layer, "weight_orig") else layer.parametrizations.weight.original
    before = trained.detach().clone()  # PyTorch's default: uniform, std about 1 / sqrt(3 * 144) = 0.048
    normal(layer, gain=0.02)
    assert not torch.equal(trained, before)
    assert abs(trained.std().item() - 0.02) < 0.002 and layer.bias.abs().max() == 0


@pytest.mark.slow
def test_the_epoch_line_in_a_log_shows_the_epochs_last_losses(tiny_recipe, capsys):
    # 8 iterations an epoch, a record every 3: the epoch's last record (iteration 8) is written by
    # the checkpoint that ends the epoch, and the epoch's line carries its losses
    trainer = Trainer(tiny_recipe("train.log_every=3"))
    trainer.fit()
    err = capsys.readouterr().err
    ends = {r["iteration"]: r["discriminators/D_A"] for r in trainer.history if "discriminators/D_A" in r}
    assert sorted(ends) == [3, 6, 8, 9, 12, 15, 16]
    assert "epoch 1/2: 8/8 iterations (iteration 8), " in err and f"; D_A {ends[8]:.3f}, " in err
    assert "epoch 2/2: 8/8 iterations (iteration 16), " in err and f"; D_A {ends[16]:.3f}, " in err


@pytest.mark.slow
def test_a_fork_into_a_folder_of_the_users_files_is_refused_before_copying(tiny_recipe, tmp_path):
    run = Trainer(tiny_recipe("train.max_iterations=2")).fit().out_dir
    mine = tmp_path / "proj"
    mine.mkdir()
    (mine / "recipe.yaml").write_text("# my notes\nbase: cyclegan-fashion\n")
    with raises(CheckpointError, "user-files", says=("recipe.yaml",)):
        Trainer.resume(run, ["train.max_iterations=4"], out_dir=mine)
    assert os.listdir(mine) == ["recipe.yaml"] and (mine / "recipe.yaml").read_text().startswith("# my notes")


class Fails:
    """A handler that stops training with ``error`` at its first iteration (or before it starts)
    and whose end of training fails too, as a full disk makes every write fail."""

    def __init__(self, error: Exception, at_start: bool = False):
        self.error, self.at_start = error, at_start

    @hookimpl
    def unpaired_train_start(self, trainer):
        if self.at_start:
            raise self.error

    @hookimpl
    def unpaired_after_step(self, trainer):
        raise self.error

    @hookimpl
    def unpaired_train_end(self, trainer, result):
        raise OSError(28, "No space left on device")


@pytest.mark.slow
def test_a_resume_stopped_before_its_first_checkpoint_resumes_again(tiny_recipe):
    # recipe.yaml takes a resume's overrides with its first checkpoint: a resume killed before it
    # leaves the file as its checkpoint's, not as an edit that blocks the next resume
    run = Trainer(tiny_recipe("train.max_iterations=2")).fit().out_dir
    before = (run / "recipe.yaml").read_text()
    resumed = Trainer.resume(run, ["train.log_every=3", "train.max_iterations=6"], hooks=[Fails(KeyboardInterrupt(), True)])
    with pytest.raises(KeyboardInterrupt):
        resumed.fit()
    assert (run / "recipe.yaml").read_text() == before
    again = Trainer.resume(run, ["train.max_iterations=4"])
    assert again.fit().iteration == 4 and "max_iterations: 4" in (run / "recipe.yaml").read_text()


@pytest.mark.slow
def test_the_error_that_stopped_training_is_not_masked_by_a_failing_end(tiny_recipe, capsys):
    trainer = Trainer(tiny_recipe("train.max_iterations=4"), hooks=[Fails(RuntimeError("the first failure"))])
    with pytest.raises(RuntimeError, match="the first failure"):
        trainer.fit()
    assert "ending the run after the error below failed too: [Errno 28] No space left on device" in capsys.readouterr().err


@pytest.mark.slow
def test_a_recipe_yaml_that_no_longer_parses_is_named_on_resume(tiny_recipe):
    run = Trainer(tiny_recipe("train.max_iterations=2")).fit().out_dir
    with open(run / "recipe.yaml", "a") as f:
        f.write("  bad: [unclosed\n")
    with raises(RecipeError, "edited-recipe", key=str(run / "recipe.yaml"), says=("no longer reads as YAML",)):
        Trainer.resume(run, ["train.max_iterations=4"])


def test_a_negative_image_limit_is_refused(capsys):
    assert main(["recipe", "check", "cyclegan-fashion", "data.args.limit=-5", "device=cpu"]) == 1
    assert "limit: 0 (every image) or a positive count of images per domain, got -5" in capsys.readouterr().out


def test_an_override_that_misspells_a_network_says_which_it_meant(image_root):
    from unpaired.recipe.validate import validate

    problems = validate(load_recipe("cyclegan", [f"data.args.root={image_root}", "networks.G_Ab.args.ngf=8"]))
    assert [(p.key, p.code) for p in problems] == [("networks.G_Ab.type", "missing")]
    assert "('G_Ab' is a new network here: the recipe's are G_AB, G_BA, D_A, D_B. Did you mean 'G_AB'?)" in problems[0]


@pytest.mark.slow
def test_a_fork_onto_a_full_disk_says_so_and_can_be_tried_again(tiny_recipe, small_disk):
    run = Trainer(tiny_recipe("train.max_iterations=2")).fit().out_dir
    disk = small_disk(8 * 1024)
    fill(disk, 64 * 1024)
    with raises(CheckpointError, "write-failed", key=str(disk / "fork"), says=("No space left on device", "MiB free on")):
        Trainer.resume(run, ["train.max_iterations=4"], out_dir=disk / "fork")
    assert sorted(os.listdir(disk / "fork")) == [".lock"]  # no partial copy
    (disk / "filler").unlink()
    assert Trainer.resume(run, ["train.max_iterations=4"], out_dir=disk / "fork").fit().iteration == 4
