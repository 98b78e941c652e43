"""Runs from runs: fine-tuning from another run's weights (init_from), forks, overrides on resume,
and the warning for a train.epochs that does not fit the LR schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from unpaired import CheckpointError, RecipeError, hookimpl
from unpaired.runs import checkpoint
from unpaired.cli import main
from unpaired.tools.check import check_all
from unpaired.recipe.load import from_yaml, load_recipe
from unpaired.recipe.resolved import resolve
from unpaired.engine.schedule import schedule_warning
from unpaired.recipe.plan import idle_networks_warning
from unpaired.loop.trainer import Trainer

from conftest import TINY, raises


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {p.relative_to(folder).as_posix(): checkpoint.file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def tiny(out: Path, *overrides: str):
    return load_recipe("cyclegan-fashion", [*TINY, f"out_dir={out}", *overrides])


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny run stopped mid-epoch at iteration 5 (8 per epoch); tests only read it."""
    run = tmp_path_factory.mktemp("source") / "run"
    Trainer(tiny(run, "train.max_iterations=5")).fit()
    return run


class StartWeights:
    """Keeps a copy of every network's weights as training starts."""

    @hookimpl
    def unpaired_train_start(self, trainer):
        self.weights = {n: {k: v.clone() for k, v in net.state_dict().items()} for n, net in trainer.nets.items()}


@pytest.mark.slow
def test_fine_tune_from_a_run_into_a_new_directory(source, tmp_path):
    before = file_hashes(source)
    start = StartWeights()
    recipe = tiny(tmp_path / "ft", f"init_from.path={source}", "init_from.networks=[G_AB,G_BA]", "train.max_iterations=2")
    trainer = Trainer(recipe, hooks=[start])
    result = trainer.fit()

    _, source_weights = checkpoint.load_weights(source)
    for name in ("G_AB", "G_BA"):  # the chosen networks start as the source's
        assert all(torch.equal(start.weights[name][k], v) for k, v in source_weights[name].items()), name
    for name in ("D_A", "D_B"):  # the others as the recipe initialises them
        assert not all(torch.equal(start.weights[name][k], v) for k, v in source_weights[name].items()), name
    # a new run: its own counters, optimizer and schedule, in its own directory
    assert result.iteration == 2 and [r["iteration"] for r in log(tmp_path / "ft")] == [2]
    assert log(tmp_path / "ft")[0]["lr/generators"] == pytest.approx(2e-4)
    assert checkpoint.latest(tmp_path / "ft").name == "iter_00000002"
    adam = trainer.executor.optimizers["generators"]
    assert {int(s["step"]) for s in adam.state.values()} == {2}
    # the recipe records where the weights came from
    ckpt = checkpoint.latest(source)
    saved = from_yaml((tmp_path / "ft" / "recipe.yaml").read_text()).init_from
    assert saved.path == str(ckpt.resolve()) and list(saved.networks) == ["G_AB", "G_BA"]
    assert saved.sha256 == checkpoint.file_sha256(ckpt / checkpoint.WEIGHTS)
    assert file_hashes(source) == before  # the source run is only read


@pytest.mark.slow
def test_init_from_a_weights_only_checkpoint_with_some_networks(source, tmp_path, capsys):
    _, weights = checkpoint.load_weights(source)
    gens = tmp_path / "generators"  # as an importer writes one: weights.safetensors alone, generators only
    gens.mkdir()
    save_file({f"{n}.{k}": v for n in ("G_AB", "G_BA") for k, v in weights[n].items()}, gens / checkpoint.WEIGHTS,
              metadata={"recipe": (source / "recipe.yaml").read_text()})
    assert check_all(tiny(tmp_path / "x", f"init_from.path={gens}")) == [
        f"init_from.networks: {gens} holds no weights for D_A, D_B; choose among G_AB, G_BA "
        "(e.g. init_from.networks=[G_AB,G_BA])."]
    code = main(["train", "cyclegan-fashion", *TINY, "train.max_iterations=1", "--init-from", f"{gens}:G_AB,G_BA",
                 "--out", str(tmp_path / "ft")])
    assert code == 0, capsys.readouterr().err
    recorded = from_yaml((tmp_path / "ft" / "recipe.yaml").read_text()).init_from
    assert list(recorded.networks) == ["G_AB", "G_BA"] and recorded.path == str(gens.resolve())


@pytest.mark.slow
def test_recipe_check_refuses_init_from_that_does_not_fit(source, tmp_path):
    def problems(*overrides):
        return check_all(tiny(tmp_path / "x", f"init_from.path={source}", *overrides))

    assert problems() == []
    assert problems("init_from.networks=[G_XY]") == [
        "init_from.networks: G_XY not defined in this recipe; its networks are G_AB, G_BA, D_A, D_B."]
    [shape] = problems("networks.G_AB.args.ngf=16", "init_from.networks=[G_AB]")
    assert shape == (f"init_from: network 'G_AB' does not fit: 'model.1.weight' is (8, 1, 7, 7) in "
                     f"{checkpoint.latest(source)} but (16, 1, 7, 7) in this recipe; give networks.G_AB the source "
                     "run's type and args, or leave it out of init_from.networks.")
    [sha] = problems("init_from.sha256=0123")
    assert sha.startswith("init_from.sha256: ") and sha.endswith("set init_from.sha256=null to start from these.")
    [missing] = check_all(tiny(tmp_path / "x", f"init_from.path={tmp_path / 'nowhere'}"))
    assert missing.startswith(f"init_from.path: {tmp_path / 'nowhere'}: no checkpoint found")


@pytest.mark.slow
def test_resume_with_an_lr_override_logs_the_new_lr(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(run, "train.max_iterations=4", "steps.generators.optimizer.args.fused=false")).fit()
    resumed = Trainer.resume(run, ["steps.generators.optimizer.args.lr=0.00005", "steps.generators.optimizer.args.betas=[0.9,0.99]",
                                   "steps.generators.optimizer.args.fused=null", "train.max_iterations=6", "train.log_every=1"])
    group = resumed.executor.optimizers["generators"].param_groups[0]
    assert group["lr"] == pytest.approx(5e-5) and group["betas"] == (0.9, 0.99)
    assert group["fused"] is False  # how the restored optimizer computes is kept (null would mean fused)
    assert {int(s["step"]) for s in resumed.executor.optimizers["generators"].state.values()} == {4}  # moments kept
    resumed.fit()
    first = [r for r in log(run) if r["iteration"] > 4][0]
    assert first["iteration"] == 5
    assert first["lr/generators"] == pytest.approx(5e-5) and first["lr/discriminators"] == pytest.approx(2e-4)
    saved = from_yaml((run / "recipe.yaml").read_text())
    assert saved.steps.generators.optimizer.args.lr == pytest.approx(5e-5)


@pytest.mark.slow
def test_resume_applies_a_parameter_groups_own_lr_and_keeps_it_when_the_step_lr_changes(tmp_path):
    """A group's args are its own (StarGAN v2's mapping network at lr 1e-6): a resume that changes
    the step's lr leaves the group's lr alone, one that changes the group's lr applies it; adding a
    group is refused (the saved optimizer state has no place for it)."""
    run = tmp_path / "run"
    group = "steps.generators.optimizer.groups.G_BA"
    Trainer(tiny(run, "train.max_iterations=4", f"{group}.lr=0.00001", f"{group}.betas=[0.9,0.999]")).fit()
    resumed = Trainer.resume(run, ["steps.generators.optimizer.args.lr=0.00005", "train.max_iterations=6"])
    groups = resumed.executor.optimizers["generators"].param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(5e-5), pytest.approx(1e-5)]
    assert [tuple(g["betas"]) for g in groups] == [(0.5, 0.999), (0.9, 0.999)]
    resumed.fit()
    with raises(RecipeError, code="fixed-on-resume", key="steps.discriminators.optimizer.groups.D_A"):
        Trainer.resume(run, ["steps.discriminators.optimizer.groups.D_A.lr=0.001", "train.max_iterations=8"])
    again = Trainer.resume(run, [f"{group}.lr=0.00002", f"{group}.betas=[0.8,0.9]", "train.max_iterations=8"])
    groups = again.executor.optimizers["generators"].param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(5e-5), pytest.approx(2e-5)]
    assert [tuple(g["betas"]) for g in groups] == [(0.5, 0.999), (0.8, 0.9)]
    assert [g["initial_lr"] for g in groups] == [pytest.approx(5e-5), pytest.approx(2e-5)]
    again.fit()


@pytest.mark.slow
def test_extending_a_finished_schedule_applies_from_the_first_resumed_epoch(tmp_path, capsys):
    run = tmp_path / "run"  # 8 images a domain, batch 4: 2 iterations an epoch
    Trainer(tiny(run, "data.args.limit=8", "train.epochs=4", "train.scheduler.args.n_epochs_decay=3")).fit()
    resumed = Trainer.resume(run, ["train.epochs=6", "train.scheduler.args.n_epochs_decay=9", "train.log_every=1"])
    assert (resumed.iteration, resumed.epoch) == (8, 4)
    resumed.fit()
    first = [r for r in log(run) if r["iteration"] > 8][0]
    # linear rule 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay + 1), e = 4 epochs done
    assert (first["iteration"], first["epoch"]) == (9, 4)
    assert first["lr/generators"] == pytest.approx(2e-4 * (1 - 4 / 10))
    assert [r["lr/generators"] for r in log(run) if r["iteration"] == 11] == [pytest.approx(2e-4 * (1 - 5 / 10))]
    assert ("train.epochs=6 but the linear schedule (n_epochs=1, n_epochs_decay=9) reaches LR 0 only after epoch 10"
            in capsys.readouterr().err)


def test_a_checkpoint_file_a_missing_weight_set_and_an_out_under_a_file_are_named(source, tmp_path, capsys):
    ckpt = checkpoint.latest(source)
    assert checkpoint.latest(ckpt / checkpoint.WEIGHTS) == ckpt  # the file stands for its checkpoint
    with raises(CheckpointError, "not-a-checkpoint", key=str(ckpt / checkpoint.STATE), says=(str(ckpt),)):
        checkpoint.latest(ckpt / checkpoint.STATE)
    with raises(CheckpointError, "no-weight-set", says=("it holds: raw", "ema: section")):
        checkpoint.load_weights(source, "bogus")
    (tmp_path / "F").write_text("")
    assert main(["export", str(source), "--format", "torchscript", "--out", str(tmp_path / "F" / "AtoB.pt")]) != 0
    assert f"{tmp_path / 'F'} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_fork_leaves_the_old_run_unchanged_and_continues_in_the_new_one(source, tmp_path, capsys):
    before = file_hashes(source)
    new = tmp_path / "fork"
    assert main(["train", "--resume", str(source), "--out", str(new), "train.max_iterations=12"]) == 0
    assert f"resuming {source} as a fork in {new} at epoch 1, iteration 5" in capsys.readouterr().out
    assert file_hashes(source) == before
    assert checkpoint.latest(new).name == "iter_00000012"
    steps = [r["iteration"] for r in log(new)]
    assert steps[: steps.index(5) + 1] == [r["iteration"] for r in log(source)]  # the history up to the fork
    assert steps[steps.index(5) + 1 :] == [6, 8, 10, 12]
    # exactly where an uninterrupted run would be
    full = tmp_path / "full"
    Trainer(tiny(full, "train.max_iterations=12")).fit()
    ours, theirs = (checkpoint.load_weights(r)[1] for r in (new, full))
    assert all(torch.equal(ours[n][k], theirs[n][k]) for n in theirs for k in theirs[n])
    with raises(CheckpointError, "run-exists", key=str(new)):
        Trainer.resume(source, ["train.max_iterations=20"], out_dir=new)


def test_resume_refuses_what_a_restored_run_cannot_take(source, tmp_path):
    before = file_hashes(source)
    with raises(RecipeError, "fixed-on-resume", key="networks.G_AB.args.ngf", says=("steps.generators.networks",)):
        Trainer.resume(source, ["networks.G_AB.args.ngf=16", "steps.generators.networks=[G_AB]"])
    with raises(RecipeError, "fixed-on-resume", key="init_from"):
        Trainer.resume(source, [f"init_from.path={source}"])
    assert main(["train", "--resume", str(source), "--init-from", str(source)]) == 2
    assert file_hashes(source) == before


def test_networks_no_step_updates_are_warned_about(tmp_path, capsys):
    """steps.generators=null checked OK and trained only the discriminators, without a word."""
    assert idle_networks_warning(resolve(load_recipe("cyclegan-fashion"))) is None
    assert idle_networks_warning(resolve(load_recipe("cyclegan-fashion", ["steps.generators=null"]))) == (
        "networks G_AB, G_BA are in no step's networks: no optimizer updates them, they keep their initial "
        "(or init_from) weights; add them to a step, or remove them if that is not meant.")
    assert main(["recipe", "check", "cyclegan-fashion", "steps.generators=null"]) == 0  # a warning, not a problem
    assert "warning: networks G_AB, G_BA are in no step's networks" in capsys.readouterr().err
    Trainer(tiny(tmp_path / "run", "steps.discriminators=null", "train.max_iterations=1")).fit()
    assert "warning: networks D_A, D_B are in no step's networks" in capsys.readouterr().err


@pytest.mark.slow
def test_epochs_past_the_schedule_are_warned_about(capsys):
    def warning(*overrides):
        return schedule_warning(resolve(load_recipe("cyclegan-fashion", list(overrides))))

    assert warning("train.epochs=20") == (
        "train.epochs=20 but the linear schedule (n_epochs=8, n_epochs_decay=8) reaches LR 0 after epoch 16: "
        "epochs 17-20 train at LR 0; lengthen the schedule (train.scheduler.args) or set train.epochs=16.")
    assert warning("train.epochs=12") == (
        "train.epochs=12 but the linear schedule (n_epochs=8, n_epochs_decay=8) reaches LR 0 only after epoch 16: "
        "the last epoch trains at 0.56x the base LR, the decay cut short; set train.epochs=16 or shorten the "
        "schedule (train.scheduler.args).")
    other = ["train.scheduler.args.n_epochs=null", "train.scheduler.args.n_epochs_decay=null"]  # any schedule plugin
    assert warning("train.scheduler.type=cosine", "train.scheduler.args.t_max=10", *other).endswith("reaches LR 0 after epoch 10: epoch 11 trains at LR 0; lengthen the "
                                                  "schedule (train.scheduler.args) or set train.epochs=10.")
    for fine in (["train.epochs=20", "train.scheduler.args.n_epochs_decay=12"], [], ["train.scheduler.type=plateau", *other]):
        assert warning(*fine) is None, fine
    assert main(["recipe", "check", "cyclegan-fashion", "train.epochs=20"]) == 0  # a warning, not a problem
    out = capsys.readouterr()
    assert "warning: train.epochs=20 but the linear schedule" in out.err and out.out.endswith("OK\n")
