"""Reliability: exact resume (also after SIGKILL), safe and atomic checkpoints, NaN guard, signals."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from unpaired import CheckpointError, Component, DataError, RecipeError, hookimpl
from unpaired.runs import checkpoint
from unpaired.inference.translator import Translator
from unpaired.loop.trainer import Trainer, TrainingDiverged

from conftest import TINY, raises

UNPAIRED = [sys.executable, "-m", "unpaired.cli"]


def weights(run: Path, weight_set: str | None = None) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.latest(run) / checkpoint.weights_file(weight_set)))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_resume_in_the_middle_of_an_epoch_is_exact(tiny_recipe, tmp_path, device):
    # 8 iterations per epoch; stop after 5 (mid-epoch, image pools half full), resume to 12. G_AB's
    # dropout draws from the device's generator (CUDA's on a GPU): its state must be restored too.
    same = [f"device={device}", "networks.G_AB.args.dropout=true",
            *(["train.deterministic=true"] if device == "cuda" else [])]  # cuDNN's fastest kernels vary run to run
    full = Trainer(tiny_recipe("train.max_iterations=12", f"out_dir={tmp_path / 'full'}", *same))
    full.fit()
    part = Trainer(tiny_recipe("train.max_iterations=5", f"out_dir={tmp_path / 'part'}", *same))
    part.fit()
    resumed = Trainer.resume(tmp_path / "part", ["train.max_iterations=12"])
    assert (resumed.iteration, resumed.epoch, resumed.epoch_iteration) == (5, 0, 5)
    assert len(resumed.executor.pools["discriminators.D_A"].images) == 20
    resumed.fit()
    assert (resumed.iteration, resumed.epoch) == (12, 1)
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "part"))
    assert resumed.executor.optimizers["generators"].param_groups[0]["lr"] == full.executor.optimizers["generators"].param_groups[0]["lr"]


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_is_counted_as_the_progress_bar_counts(tiny_recipe, tmp_path, capsys):
    # max_iterations=5 of 8 iterations per epoch: the epoch's line (the bar's, in a log) ends at 5/8,
    # and every message says epoch 1
    run = tmp_path / "run"
    Trainer(tiny_recipe("train.max_iterations=5", f"out_dir={run}")).fit()
    err = capsys.readouterr().err
    assert "\r" not in err  # stderr is not a terminal: lines, no bar redraws
    assert "epoch 1/2: 5/8 iterations (iteration 5)" in err
    with raises(RecipeError, "finished", key="train.epochs", says=("epoch 1/2, iteration 5 of train.max_iterations=5",)):
        Trainer.resume(run)
    resumed = Trainer.resume(run, ["train.max_iterations=8"])
    assert resumed.epoch_label == "epoch 1/2"
    resumed.fit()
    assert resumed.epoch_label == "epoch 1/2" and resumed.epoch == 1  # just finished: still epoch 1


@pytest.mark.slow
def test_resume_continues_the_lr_schedule(tiny_recipe, tmp_path):
    # Stop at an epoch boundary during the decay: the resumed run must not restart the schedule.
    run = tmp_path / "run"
    Trainer(tiny_recipe("train.epochs=4", "train.max_iterations=16", f"out_dir={run}")).fit()  # 2 of 4 epochs
    with raises(RecipeError, "finished", key="train.epochs", says=("epoch 2/4, iteration 16 of train.max_iterations=16",)):
        Trainer.resume(run)
    resumed = Trainer.resume(run, ["train.max_iterations=null"])
    # n_epochs=1, n_epochs_decay=1: after 2 epochs the multiplier is 1 - max(0, 2+1-1)/2 = 0.
    assert resumed.epoch == 2
    assert resumed.executor.optimizers["generators"].param_groups[0]["lr"] == pytest.approx(0.0)
    assert resumed.executor.schedulers["generators"].last_epoch == 2


def _cli_train(out: Path, *extra: str) -> subprocess.Popen:
    args = [*UNPAIRED, "train", "cyclegan-fashion", *TINY, "train.checkpoint_every=3", *extra, "--out", str(out)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(pred, proc, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        if proc.poll() is not None:
            pytest.fail(f"process ended early:\n{proc.stdout.read()}")
        time.sleep(0.01)
    pytest.fail("timed out")


@pytest.mark.subprocess
def test_sigkill_then_resume_gives_identical_weights(tmp_path):
    """Killed mid-run and resumed, the networks and the EMA handler's averages (its state in the
    checkpoint) end bit-identical to an uninterrupted run's."""
    steps = ["train.epochs=5", "handlers.ema.type=ema", "handlers.ema.args.networks=[G_AB,G_BA]",
             "handlers.ema.args.decay=0.9"]  # 40 iterations
    ref = _cli_train(tmp_path / "ref", *steps)
    assert ref.wait(timeout=300) == 0, ref.stdout.read()

    run = tmp_path / "killed"
    proc = _cli_train(run, *steps)
    pointer = run / "checkpoints" / "latest"
    _wait_for(lambda: pointer.is_file() and pointer.read_text().strip() >= "iter_00000006", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    stopped_at = int(checkpoint.latest(run).name.split("_")[1])
    assert 6 <= stopped_at < 40

    resume = subprocess.run([*UNPAIRED, "train", "--resume", str(run)], capture_output=True, text=True, timeout=300)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    assert f"at epoch {stopped_at // 8 + 1}, iteration {stopped_at}" in resume.stdout
    assert checkpoint.latest(run).name == "iter_00000040"
    assert_same_weights(weights(tmp_path / "ref"), weights(run))
    ema = weights(run, "ema")
    assert_same_weights(weights(tmp_path / "ref", "ema"), ema)
    assert {k.split(".")[0] for k in ema} == {"G_AB", "G_BA"}
    assert not all(torch.equal(ema[k], weights(run)[k]) for k in ema)  # an average, not a copy


@pytest.mark.subprocess
def test_sigterm_writes_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = _cli_train(run, "train.epochs=1000")
    _wait_for(lambda: (run / "log.jsonl").is_file(), proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "SIGTERM received" in out and f"unpaired train --resume {run}" in out
    ckpt = checkpoint.latest(run)
    state = checkpoint.load_state(ckpt)
    assert ckpt.name == f"iter_{state['counters']['iteration']:08d}" and state["counters"]["iteration"] >= 2


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/unpaired-pwned",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    ckpt = tmp_path / "iter_00000001"
    ckpt.mkdir()
    with open(ckpt / checkpoint.STATE, "wb") as f:
        pickle.dump({"counters": _Boom()}, f)
    Path("/tmp/unpaired-pwned").unlink(missing_ok=True)
    with raises(CheckpointError, "unsafe", key=str(ckpt / "state.pt")):
        checkpoint.load_state(ckpt)
    assert not Path("/tmp/unpaired-pwned").exists()


@pytest.mark.slow
def test_module_prefixed_weights_load(tiny_recipe, tmp_path):
    trainer = Trainer(tiny_recipe("train.max_iterations=1"))
    trainer.fit()
    src = checkpoint.latest(trainer.out_dir)
    flat = load_file(str(src / checkpoint.WEIGHTS))
    prefixed = {k.replace(".", ".module._orig_mod.", 1): v for k, v in flat.items()}  # DDP + compile
    dst = tmp_path / "ddp" / "iter_00000001"
    dst.mkdir(parents=True)
    save_file(prefixed, dst / checkpoint.WEIGHTS, metadata={"recipe": (trainer.out_dir / "recipe.yaml").read_text()})
    x = torch.rand(1, 1, 28, 28) * 2 - 1
    assert torch.equal(Translator(dst, "AtoB", "cpu")(x), Translator(src, "AtoB", "cpu")(x))


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    with raises(CheckpointError, "no-checkpoint", key=str(tmp_path)):
        checkpoint.latest(tmp_path)
    bad = tmp_path / "iter_00000001"
    bad.mkdir()
    (bad / checkpoint.WEIGHTS).write_bytes(b"not safetensors")
    with raises(CheckpointError, "unreadable", key=str(bad / checkpoint.WEIGHTS)):
        checkpoint.load_weights(bad)


class NaNAfter(nn.Module):
    """L1 loss that turns NaN after ``after`` calls."""

    def __init__(self, after: int = 3):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, input, target):
        self.calls += 1
        loss = (input - target).abs().mean()
        return loss * float("nan") if self.calls > self.after else loss


@pytest.fixture
def nan_plugin(monkeypatch):
    mod = types.ModuleType("nan_plugin")
    mod.unpaired_components = hookimpl(lambda: [Component("consistency_loss", "nan_after", NaNAfter)])
    monkeypatch.setitem(sys.modules, "nan_plugin", mod)


def nan_term(after: int) -> list[str]:
    """Overrides adding the loss term ``generators.bad``, NaN from call ``after + 1`` on."""
    return ["plugins=[nan_plugin]",
            f"steps.generators.losses.bad={{consistency: nan_after, input: rec_A, target: real_A, args: {{after: {after}}}}}"]


@pytest.mark.slow
def test_nan_guard_skips_steps_then_stops_keeping_the_last_good_checkpoint(tiny_recipe, nan_plugin, device):
    recipe = tiny_recipe(*nan_term(4), "train.checkpoint_every=2", "train.max_nonfinite=3", f"device={device}",
                         *(["train.precision=fp16"] if device == "cuda" else []))  # on CUDA with the scaler
    trainer = Trainer(recipe)
    with raises(TrainingDiverged, "diverged", says=("3 iterations", "generators.bad", "iter_00000004")):
        trainer.fit()
    assert trainer.iteration == 6 and trainer.executor.nonfinite_total == 3  # iterations 5, 6, 7 skipped; 7 never counted
    saved = load_file(str(checkpoint.latest(trainer.out_dir) / checkpoint.WEIGHTS))
    assert checkpoint.latest(trainer.out_dir).name == "iter_00000004"
    assert all(torch.isfinite(v).all() for v in saved.values())
    assert all(torch.isfinite(p).all() for p in trainer.nets["G_AB"].parameters())


@pytest.mark.slow
def test_a_run_that_ends_non_finite_before_any_checkpoint_fails(tiny_recipe, nan_plugin):
    # NaN from the third iteration, max_iterations 4 < the guard's limit: the run ends without a checkpoint to keep
    recipe = tiny_recipe(*nan_term(2), "train.max_iterations=4", "train.max_nonfinite=5")
    trainer = Trainer(recipe)
    with raises(TrainingDiverged, "diverged", says=("2 iteration(s)", "No checkpoint was written yet")):
        trainer.fit()
    assert checkpoint.latest(trainer.out_dir, missing_ok=True) is None


def test_unwritable_run_directory_fails_before_training(tiny_recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    trainer = Trainer(tiny_recipe(f"out_dir={blocker / 'run'}"))
    with raises(CheckpointError, "not-writable", key=str(blocker / "run")):
        trainer.fit()
    assert trainer.iteration == 0


@pytest.mark.slow
def test_failed_checkpoint_write_stops_training_and_keeps_the_previous_one(tiny_recipe, monkeypatch):
    trainer = Trainer(tiny_recipe("train.max_iterations=2"))
    trainer.fit()
    first = checkpoint.latest(trainer.out_dir)

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with raises(CheckpointError, "write-failed", says=("No space left on device", "MiB free on", str(first))):
        Trainer.resume(trainer.out_dir, ["train.max_iterations=3"]).fit()  # training stops: nothing is lost silently
    assert checkpoint.latest(trainer.out_dir) == first
    assert not list((trainer.out_dir / "checkpoints").glob(".tmp-*"))
    assert checkpoint.load_state(first)["counters"]["iteration"] == 2


@pytest.mark.slow
def test_only_the_newest_checkpoints_are_kept(tiny_recipe):
    trainer = Trainer(tiny_recipe("train.max_iterations=10", "train.checkpoint_every=2", "train.keep_checkpoints=2"))
    trainer.fit()
    names = sorted(p.name for p in (trainer.out_dir / "checkpoints").iterdir())
    assert names == ["iter_00000008", "iter_00000010", "latest"]
    assert (trainer.out_dir / "checkpoints" / "latest").read_text() == "iter_00000010\n"


@pytest.mark.slow
def test_a_new_run_never_mixes_with_an_old_one(tiny_recipe):
    Trainer(tiny_recipe("train.max_iterations=2")).fit()
    again = Trainer(tiny_recipe("train.max_iterations=2"))
    with raises(CheckpointError, "run-exists", key=str(again.out_dir), says=("iter_00000002", "--resume")):
        again.fit()
    with raises(CheckpointError, "is-checkpoint"):
        Trainer.resume(checkpoint.latest(again.out_dir))


@pytest.mark.slow
def test_resume_with_another_batch_size_continues_at_the_same_sample(tiny_recipe):
    first = Trainer(tiny_recipe("train.max_iterations=3"))  # 3 iterations of 4 = 12 of 32 samples
    first.fit()
    resumed = Trainer.resume(first.out_dir, ["data.batch_size=2", "train.max_iterations=null"])
    assert resumed.epoch_samples == 12 and len(resumed.sampler) == 32
    resumed.sampler.set_epoch(0, start=resumed.epoch_samples)
    assert len(resumed.sampler) == 20


def test_bad_data_mid_run_keeps_the_work_done(tmp_path, image_root):
    from unpaired.recipe.load import load_recipe

    # damaged pixel data behind a sound header and end marker: only found when read (the check
    # before training reads headers), so training stops mid-run
    bad = image_root / "trainA" / "img_005.png"
    raw = bytearray(bad.read_bytes())
    idat = raw.index(b"IDAT")
    raw[idat + 6 : idat + 10] = b"\xff\xff\xff\xff"
    bad.write_bytes(bytes(raw))
    small = [f"networks.{n}.args.ngf=4" for n in ("G_AB", "G_BA")] + [f"networks.{n}.args.ndf=4" for n in ("D_A", "D_B")]
    recipe = load_recipe("cyclegan", [f"data.args.root={image_root}", "data.args.load_size=36", "data.args.crop_size=32",
                                      "data.num_workers=0", "device=cpu", f"out_dir={tmp_path / 'run'}", *small])
    trainer = Trainer(recipe)
    with raises(DataError, "cannot-decode", says=("img_005.png", "a checkpoint at iteration")):
        trainer.fit()
    assert trainer.iteration >= 1 and checkpoint.latest(tmp_path / "run").name == f"iter_{trainer.iteration:08d}"


@pytest.mark.slow
def test_resume_drops_what_a_killed_run_logged_after_its_checkpoint(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_recipe("train.max_iterations=4", "train.log_every=2", f"out_dir={run}")).fit()
    log = run / "log.jsonl"
    with open(log, "a") as f:  # a killed session: a record past the checkpoint (iteration 4), a line cut short
        f.write('{"step": 6, "epoch": 0, "G/cycle_A": 9.0}\n{"step": 8, "ep')
    Trainer.resume(run, ["train.max_iterations=8"]).fit()
    steps = [json.loads(line)["iteration"] for line in log.read_text().splitlines()]
    assert steps == [2, 4, 6, 8]  # each logged iteration once, those before the checkpoint kept
    assert all(json.loads(line).get("G/cycle_A") != 9.0 for line in log.read_text().splitlines())


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_names_an_earlier_one_to_fork_from(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_recipe("train.max_iterations=4", "train.checkpoint_every=2", f"out_dir={run}")).fit()
    state = run / "checkpoints" / "iter_00000004" / checkpoint.STATE
    state.write_bytes(state.read_bytes()[:100])  # cut short, as a full disk or a bad copy leaves it
    earlier = run / "checkpoints" / "iter_00000002"
    with raises(CheckpointError, "damaged", key=str(state), says=(f"--resume {earlier} --out NEW_RUN",)):
        Trainer.resume(run, ["train.max_iterations=6"])
    with raises(CheckpointError, "is-checkpoint", key=str(earlier)):
        Trainer.resume(earlier)
    fork = Trainer.resume(earlier, ["train.max_iterations=6"], out_dir=tmp_path / "fork")
    assert fork.iteration == 2 and fork.fit().iteration == 6
    steps = [json.loads(line)["iteration"] for line in (tmp_path / "fork" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]  # the log up to the checkpoint forked from, then the fork's own


@pytest.mark.slow
def test_weights_changed_after_their_checkpoint_was_written_are_refused(tiny_recipe, tmp_path):
    """Zeroed bytes inside the tensors leave a file that loads: resume trained on from the damaged
    weights. Each checkpoint now lists its files' SHA-256 (SHA256SUMS, as sha256sum writes it)."""
    import hashlib
    import subprocess

    from unpaired.inference.translator import Translator

    run = tmp_path / "run"
    Trainer(tiny_recipe("train.max_iterations=4", "train.checkpoint_every=2", f"out_dir={run}")).fit()
    ckpt = run / "checkpoints" / "iter_00000004"
    sums = dict(line.split("  ")[::-1] for line in (ckpt / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == sorted(["state.pt", "weights.safetensors"])
    assert sums["weights.safetensors"] == hashlib.sha256((ckpt / "weights.safetensors").read_bytes()).hexdigest()
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=ckpt, capture_output=True).returncode == 0
    weights = ckpt / checkpoint.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-3000:] = bytes(3000)
    weights.write_bytes(bytes(data))
    earlier = run / "checkpoints" / "iter_00000002"
    with raises(CheckpointError, "checksum-mismatch", key=str(weights), says=(f"--resume {earlier} --out NEW_RUN",)):
        Trainer.resume(run, ["train.max_iterations=6"])
    with raises(CheckpointError, "checksum-mismatch", key=str(weights)):
        Translator(run, "AtoB", "cpu")
    (ckpt / "SHA256SUMS").unlink()  # a checkpoint written before the sums: loaded as it is
    assert Translator(run, "AtoB", "cpu").nets


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_is_trained_again(tiny_recipe, tmp_path, capsys):
    import shutil

    from unpaired.cli import main

    run = tmp_path / "run"
    Trainer(tiny_recipe("train.max_iterations=4", f"out_dir={run}")).fit()
    shutil.rmtree(run / "checkpoints")  # what a kill before the first checkpoint leaves: recipe, log, no checkpoint
    with raises(CheckpointError, "no-checkpoint", key=str(run), says=(f"unpaired train {run / 'recipe.yaml'} --out {run}",)):
        Trainer.resume(run)
    Trainer(tiny_recipe("train.max_iterations=2", f"out_dir={run}")).fit()
    steps = [json.loads(line)["iteration"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [2]  # the killed run's records (2 and 4) are gone
    capsys.readouterr()
    assert main(["train", "cyclegan-fashion", "--resume", str(run)]) == 2
    assert f"error: --resume continues {run} with its own recipe; give only key=value overrides, not a recipe " \
           "('cyclegan-fashion')" in capsys.readouterr().err
