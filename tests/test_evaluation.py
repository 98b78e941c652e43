"""Evaluation of runs: the Evaluator on known translations, evaluation during training with the best
checkpoint, `unpaired evaluate` on a run and on folders, and the errors a user meets."""

from __future__ import annotations

import json
import types

import pytest
import torch
from torch import nn
from torchvision.io import write_png

from unpaired import Component, hookimpl
from unpaired.cli import main
from unpaired.errors import RecipeError
from unpaired.evaluation.evaluator import Evaluator
from unpaired.evaluation.entry import evaluate_folders
from unpaired.evaluation.metrics import Judge
from unpaired.recipe.load import load_recipe
from unpaired.plugin.registry import Registry
from unpaired.loop.trainer import Trainer

from conftest import raises

#: The demo's judge and the paper's kinds of metric, on 16 test images per domain.
EVAL = ["eval.metrics.classifier={}", "eval.metrics.fid={}", "eval.metrics.kid={}", "eval.metrics.diversity={}",
        "eval.metrics.cycle={}", "eval.metrics.identity={}", "eval.features.type=fashion_mnist",
        "eval.classifier.type=fashion_mnist", "eval.classes.A=Sneaker", "eval.classes.B=Ankle boot",
        "eval.num_images=16"]


class Lookup(nn.Module):
    """A 'generator' that maps each known input image to a chosen output image (exact match)."""

    def __init__(self, inputs: torch.Tensor, outputs: torch.Tensor):
        super().__init__()
        self.inputs, self.outputs = inputs.flatten(1), outputs

    def forward(self, x):
        index = torch.cdist(x.flatten(1), self.inputs).argmin(1)
        return self.outputs[index]


def test_known_translations_get_known_scores(tiny_recipe):
    """Translations that *are* real target images score like the real images; identity maps do not."""
    ev = Evaluator(tiny_recipe(*EVAL), device="cpu")
    a, b = ev.images["A"], ev.images["B"]
    assert a.shape == b.shape == (16, 1, 28, 28)
    perfect = ev({"G_AB": Lookup(a, b), "G_BA": Lookup(b, a)}, {"iteration": 7})
    for d, real in (("AtoB", b), ("BtoA", a)):
        m = perfect.metrics[d]
        assert m["fid"] == pytest.approx(0, abs=1e-3) and m["diversity"] == pytest.approx(1.0)
        assert m["target_accuracy"] == m["real_target_accuracy"] >= 0.85  # the judge on real boots / sneakers
        assert m["cycle_l1"] == 0 and m["cycle_ssim"] == pytest.approx(1.0, abs=1e-5)  # Lookup back inverts Lookup
    assert perfect.protocol["iteration"] == 7 and perfect.protocol["images"] == {"A": 16, "B": 16}
    assert len(perfect.protocol["features"]["sha256"]) == 64 and perfect.protocol["classes"] == {"A": 7, "B": 9}

    same = ev({"G_AB": nn.Identity(), "G_BA": nn.Identity()})  # sneakers stay sneakers
    for d in ("AtoB", "BtoA"):
        m = same.metrics[d]
        assert m["target_accuracy"] <= 0.1 and m["fid"] > 100 * perfect.metrics[d]["fid"] + 50
        assert m["cycle_l1"] == 0 and m["identity_l1"] == 0 and m["identity_psnr"] == float("inf")
    # the two directions' translations differ, so their features must too (no stale cache)
    assert same.metrics["AtoB"]["diversity_fake"] != same.metrics["BtoA"]["diversity_fake"]


def test_judge_caches_per_tensor_and_never_confuses_two():
    calls = []
    judge = Judge(features=lambda x: calls.append(len(x)) or x.flatten(1)[:, :2])
    for value in (0.0, 1.0, 2.0):  # each tensor is freed before the next one is made
        assert judge.features(torch.full((3, 1, 4, 4), value))[0, 0] == value
    x = torch.zeros(5, 1, 4, 4)
    judge.features(x)
    judge.features(x)
    assert calls == [3, 3, 3, 5]


class Scripted:
    """A metric whose value is read from a list, one per evaluation: best-checkpoint selection is
    then known in advance."""

    values: list = []
    needs = ()
    better = {"score": "max"}

    def __call__(self, ts):
        return {"score": Scripted.values.pop(0)} if ts.direction == "AtoB" else {}


def scripted_registry():
    plugin = types.ModuleType("scripted_metric")  # a module, as an entry-point plugin is
    plugin.unpaired_components = hookimpl(lambda: [Component("metric", "scripted", Scripted)])
    reg = Registry()
    reg.register_plugin(plugin)
    return reg


@pytest.mark.slow
def test_evaluation_during_training_keeps_the_best_checkpoint(tiny_recipe, tmp_path):
    Scripted.values = [0.2, 0.9, 0.5]
    recipe = tiny_recipe("train.epochs=3", "train.scheduler.args.n_epochs=2", "train.eval_every=1",
                         "eval.metrics.scripted={}", "eval.best=AtoB/score", "eval.num_images=4", "eval.directions=[AtoB]")
    trainer = Trainer(recipe, registry=scripted_registry())
    result = trainer.fit()
    evals = [(r["iteration"], r["eval/AtoB/score"]) for r in result.history if "eval/AtoB/score" in r]
    assert evals == [(8, 0.2), (16, 0.9), (24, 0.5)]  # each epoch's end; the end is not evaluated twice
    run = tmp_path / "run"
    best = json.loads((run / "checkpoints" / "best" / "eval.json").read_text())
    assert (best["metric"], best["value"], best["iteration"], best["epoch"]) == ("AtoB/score", 0.9, 16, 2)
    assert (run / "checkpoints" / "latest").read_text().strip() == "iter_00000024"  # best is a side copy
    from safetensors.torch import load_file

    best_w, kept_w = load_file(run / "checkpoints" / "best" / "weights.safetensors"), load_file(run / "checkpoints" / "iter_00000016" / "weights.safetensors")
    assert all(torch.equal(best_w[k], kept_w[k]) for k in kept_w)  # the networks of the best epoch
    final = json.loads((run / "eval" / "iter_00000024" / "metrics.json").read_text())
    assert final["metrics"]["AtoB"]["score"] == 0.5 and final["protocol"]["epoch"] == 3

    # resumed for one more epoch: 0.7 does not beat the 0.9 kept on disk
    Scripted.values = [0.7]
    more = Trainer.resume(run, ["train.epochs=4", "train.scheduler.args.n_epochs=3"], registry=scripted_registry())
    more.fit()
    assert json.loads((run / "checkpoints" / "best" / "eval.json").read_text())["value"] == 0.9
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["sessions"] == 2 and run_json["status"] == "completed" and run_json["epoch"] == 4


@pytest.mark.slow
def test_unpaired_evaluate_on_a_run_and_on_folders(tiny_recipe, tmp_path, capsys):
    Trainer(tiny_recipe("train.max_iterations=2", *EVAL)).fit()
    run = tmp_path / "run"
    assert main(["evaluate", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "| target_accuracy ↑ |" in printed and "| fid ↓ |" in printed
    saved = json.loads((run / "eval" / "iter_00000002" / "metrics.json").read_text())
    assert saved["protocol"]["images"] == {"A": 16, "B": 16} and saved["protocol"]["iteration"] == 2
    assert set(saved["metrics"]) == {"AtoB", "BtoA"} and (run / "eval" / "iter_00000002" / "metrics.md").is_file()

    # folders: translations scored against real images, paired by file name
    fake, real = tmp_path / "fake", tmp_path / "real"
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    for folder, shift in ((fake, 0), (real, 64)):
        folder.mkdir()
        for i, img in enumerate(images):
            write_png((img.int() + shift).clamp(0, 255).to(torch.uint8), str(folder / f"{i}.png"))
    recipe = load_recipe("cyclegan-fashion", [*EVAL, "eval.metrics.paired={}", "eval.metrics.kid=null"])
    result, path = evaluate_folders(fake, real, recipe, "AtoB", paired=True, device="cpu")
    assert path == tmp_path / "fake-eval" / "metrics.json" and path.is_file()
    m = result.metrics["AtoB"]
    expected_l1 = ((images.int() + 64).clamp(0, 255) - images.int()).float().mean().item() / 127.5
    assert m["paired_l1"] == pytest.approx(expected_l1, rel=1e-5)
    assert "cycle" in result.skipped["AtoB"] and "identity" in result.skipped["AtoB"]


@pytest.mark.slow
def test_evaluation_errors_name_the_key_and_the_fix(tiny_recipe, tmp_path, monkeypatch, capsys):
    with raises(RecipeError, "unknown-class", key="eval.classes.B", says=("'Ankle boot'",)):
        Evaluator(tiny_recipe(*EVAL, "eval.classes.B=Ankle bot"))
    with raises(RecipeError, "not-rankable", key="eval.best", says=("'fid'",)):
        Evaluator(tiny_recipe(*EVAL, "eval.best=fd"))
    monkeypatch.setenv("UNPAIRED_INCEPTION_WEIGHTS", str(tmp_path / "nowhere.pth"))
    with raises(RecipeError, "rejected", key="eval.features",
                says=("nowhere.pth", "curl -L -o weights-inception-2015-12-05-6726825d.pth https://github.com/toshas")):
        Trainer(tiny_recipe(*EVAL, "eval.features.type=inception", "train.eval_every=1"))  # before any training
    assert not (tmp_path / "run").exists()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not the inception file")
    with raises(RecipeError, "rejected", key="eval.features", says=("bad.pth", "SHA-256")):
        Evaluator(tiny_recipe(*EVAL, "eval.features.type=inception", f"eval.features.args.weights={bad}"))
    no_metrics = [f"eval.metrics.{m}=null" for m in ("classifier", "fid", "kid", "diversity", "cycle", "identity")]
    Trainer(tiny_recipe("train.max_iterations=1", *no_metrics)).fit()
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "names no metrics (eval.metrics is empty)" in err and "'eval.metrics.cycle={} " in err
    assert main(["evaluate", str(tmp_path / "run"), "eval.metrics.cycle={}", "eval.best=null"]) == 0  # needs no weights
    assert "cycle" in capsys.readouterr().out
    assert main(["evaluate", "--fake", str(tmp_path)]) == 2
    assert "needs --fake DIR --real DIR --recipe RECIPE" in capsys.readouterr().err


class Brightness(nn.Module):
    """Class 1 ("bright") when an image's mean is above 0; its features: the mean and the std."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], 1) * 10

    @torch.jit.export
    def features(self, x):
        return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], 1)


@pytest.mark.parametrize("fmt", ["torchscript", "torch.export"])
def test_a_saved_module_is_a_classifier_and_a_feature_extractor(tmp_path, fmt):
    if fmt == "torchscript":
        path = tmp_path / "judge.pt"
        with pytest.warns(FutureWarning):  # deprecated by PyTorch, still what published judges are
            torch.jit.save(torch.jit.script(Brightness()), str(path))
    else:
        path = tmp_path / "judge.pt2"
        dim = torch.export.Dim.AUTO
        program = torch.export.export(Brightness(), (torch.zeros(2, 1, 8, 8),), dynamic_shapes=([dim, 1, dim, dim],))
        torch.export.save(program, str(path))
    fake, real = tmp_path / "fake", tmp_path / "real"
    for folder, values in ((fake, [250, 250, 250, 10]), (real, [200, 220, 240, 230])):
        folder.mkdir()
        for i, v in enumerate(values):
            write_png(torch.full((1, 8, 8), v, dtype=torch.uint8), str(folder / f"{i}.png"))
    recipe = load_recipe("cyclegan-fashion", [
        "eval.metrics.fid=null", "eval.metrics.kid=null", "eval.metrics.cycle=null", "eval.metrics.identity=null",
        "eval.classifier.type=torchscript", f"eval.classifier.args.path={path}", "eval.classifier.args.classes=[dark,bright]",
        "eval.features.type=torchscript", f"eval.features.args.path={path}", "eval.classes.A=dark", "eval.classes.B=bright"])
    result, _ = evaluate_folders(fake, real, recipe, "AtoB", device="cpu")
    m = result.metrics["AtoB"]
    assert m["target_accuracy"] == 0.75 and m["real_target_accuracy"] == 1.0  # 3 of 4 translations are bright
    assert result.protocol["classifier"]["sha256"] and result.protocol["classes"] == {"A": 0, "B": 1}
    if fmt == "torchscript":  # its features method: mean and std
        assert m["diversity_fake"] > m["diversity_real"] > 0  # 250 vs 10 spreads more than 200..240
    path.write_bytes(b"no torchscript")
    with raises(RecipeError, "rejected", says=("judge.pt", "not a TorchScript file")):
        evaluate_folders(fake, real, recipe, "AtoB", device="cpu")


class Fails:
    """A metric that finds the data unfit (as FID does with one image)."""

    needs = ()
    better = {"never": "max"}

    def __call__(self, ts):
        raise ValueError("needs at least 2 images")


@pytest.mark.slow
def test_a_metric_that_cannot_run_is_a_note_not_a_lost_run(tiny_recipe, tmp_path):
    plugin = types.ModuleType("failing_metric")
    plugin.unpaired_components = hookimpl(lambda: [Component("metric", "fails", Fails)])
    reg = Registry()
    reg.register_plugin(plugin)
    recipe = tiny_recipe("train.max_iterations=3", "train.eval_every=1", "eval.metrics.fails={}", "eval.best=never",
                         "eval.num_images=4", *EVAL[:1], *EVAL[6:10])
    result = Trainer(recipe, registry=reg).fit()
    assert result.error is None
    saved = json.loads((tmp_path / "run" / "eval" / "iter_00000003" / "metrics.json").read_text())
    assert saved["skipped"]["AtoB"]["fails"] == "failed: needs at least 2 images"
    assert "target_accuracy" in saved["metrics"]["AtoB"]
    assert any("eval.num_images: must be at least 2" in p for p in __import__("unpaired").check_recipe(
        tiny_recipe(*EVAL, "eval.num_images=1")))


def test_folder_mode_takes_overrides_and_checks_pairs(tmp_path, capsys):
    fake, real, small = tmp_path / "fake", tmp_path / "real", tmp_path / "small"
    for folder, size in ((fake, 28), (real, 28), (small, 20)):
        folder.mkdir()
        for i in range(4):
            write_png(torch.randint(0, 256, (1, size, size), dtype=torch.uint8), str(folder / f"{i}.png"))
    # the paper's recipe has no data here and no eval section: both come from the command line
    args = ["evaluate", "--fake", str(fake), "--real", str(real), "--recipe", "cyclegan", "eval.metrics.paired={}",
            "data.args.channels=1", "--out", str(tmp_path / "scores")]
    assert main(args) == 0 and main([*args, "--paired"]) == 0
    assert "| paired_l1 ↓ |" in capsys.readouterr().out
    assert main(["evaluate", "--fake", str(fake), "--real", str(real), "--recipe", "cyclegan-fashion", "--paired"]) == 2
    assert "--paired: the eval section has no metric that compares pairs" in capsys.readouterr().err
    assert main([*[str(small) if a == str(fake) else a for a in args], "--paired"]) == 2
    assert "paired images differ in size ((1, 20, 20) and (1, 28, 28))" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluations_with_overrides_never_replace_the_runs_own(tiny_recipe, tmp_path):
    Trainer(tiny_recipe("train.max_iterations=2", "train.eval_every=1", *EVAL)).fit()
    own = tmp_path / "run" / "eval" / "iter_00000002" / "metrics.json"
    before = own.read_text()
    assert main(["evaluate", str(tmp_path / "run"), "eval.num_images=4"]) == 0
    assert own.read_text() == before
    other = [p for p in (tmp_path / "run" / "eval").iterdir() if p.name != "iter_00000002"]
    assert len(other) == 1 and other[0].name.startswith("iter_00000002-")
    assert json.loads((other[0] / "metrics.json").read_text())["protocol"]["overrides"] == ["eval.num_images=4"]
    with raises(RecipeError, "missing-network", key="AtoB", says=("G_AB",)):
        Evaluator(tiny_recipe(*EVAL))({"G_BA": nn.Identity()})
