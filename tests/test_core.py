"""The core's contract: one resolved recipe, the check as the executor's own iteration, one load
chain and checkpoint writer, plugins with state and diagnostics, and a layout without import cycles."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import types
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from omegaconf.errors import ReadonlyConfigError
from safetensors.torch import load_file
from torch import nn

from conftest import TINY
from unpaired import Component, RecipeError, hookimpl
from unpaired.cli import main
from unpaired.evaluation.entry import evaluate_run
from unpaired.inference.translator import Translator
from unpaired.loop.trainer import Trainer
from unpaired.plugin import report
from unpaired.plugin.registry import Registry
from unpaired.recipe.load import load_recipe
from unpaired.recipe.plan import resolve_term
from unpaired.recipe.schema import LossTerm
from unpaired.recipe.resolved import resolve
from unpaired.runs import checkpoint
from unpaired.tools.check import check_all
from unpaired_plugins.losses.adversarial import LSGANLoss

REPO = Path(__file__).resolve().parents[1]


def registry_with(*components: Component, kinds: dict | None = None) -> Registry:
    reg = Registry()
    plugin = types.ModuleType("test_plugin")  # a plugin module, as a package would give
    plugin.unpaired_components = hookimpl(lambda: list(components))
    if kinds is not None:
        plugin.unpaired_component_kinds = hookimpl(lambda: kinds)
    reg.register_plugin(plugin)
    return reg


# -- recipe check: the executor's iteration on the meta device ---------------------------------------
class RaisesForTheGenerator(LSGANLoss):
    def generator_loss(self, discriminator, fake):
        raise RuntimeError("no generator loss here")


class MapForTheDiscriminator(LSGANLoss):
    def discriminator_loss(self, discriminator, real, fake):
        return (discriminator(real) - 1) ** 2  # not reduced


class MapConsistency(nn.Module):
    def forward(self, input, target):
        return (input - target).abs()


@pytest.mark.parametrize("component, term, code, said", [
    (Component("adversarial_loss", "gen_raises", RaisesForTheGenerator), "steps.generators.losses.gan_AB", "loss-failed",
     "RuntimeError: no generator loss here"),
    (Component("adversarial_loss", "disc_map", MapForTheDiscriminator), "steps.discriminators.losses.D_B", "not-scalar",
     "shape (4, 1, 5, 5)"),  # D's logit map of a batch of 4 at 28x28
    (Component("consistency_loss", "map", MapConsistency), "steps.generators.losses.cycle_A", "not-scalar",
     "shape (4, 1, 28, 28)"),
])
def test_recipe_check_calls_every_loss_on_its_side(component, term, code, said):
    """The check runs each term as training does: a generator-side failure, a discriminator-side
    map and a consistency map are each named, with the term's key and a code."""
    kind = "adversarial" if component.kind == "adversarial_loss" else "consistency"
    overrides = [f"{t}.{kind}={component.name}" for t in
                 ([term, "steps.discriminators.losses.D_B"] if term.endswith("gan_AB") else
                  [term, "steps.generators.losses.gan_AB"] if term.endswith("D_B") else [term])]
    problems = check_all(load_recipe("cyclegan-fashion", [*TINY, *overrides]), registry_with(component))
    assert [(p.key, p.code) for p in problems] == [(term, code)], problems
    assert said in problems[0]


def test_the_check_runs_documented_rectangular_crops():
    recipe = load_recipe("cyclegan-fashion", [*TINY, "data.args.crop_size=[24,28]", "data.args.load_size=[28,32]"])
    assert check_all(recipe) == []


# -- the resolved recipe ------------------------------------------------------------------------------
def test_the_recipe_is_resolved_once_and_read_only(tiny_recipe):
    recipe = tiny_recipe()
    resolved = resolve(recipe)
    assert resolve(resolved) is resolved
    assert {n: net.kind for n, net in resolved.networks.items()} == {
        "G_AB": "generator", "G_BA": "generator", "D_A": "discriminator", "D_B": "discriminator"}
    gen, disc = resolved.steps
    assert gen.terms["gan_AB"].side == "generator" and disc.terms["D_A"].side == "discriminator"
    assert disc.terms["D_A"].weight.at(0) == 0.5 and disc.terms["D_A"].pool == 50
    assert (resolved.device, resolved.precision) == (torch.device("cpu"), "fp32")
    with pytest.raises(ReadonlyConfigError):
        resolved.config.train.epochs = 3
    trainer = Trainer(resolved)
    assert trainer.recipe is resolved and trainer.executor.recipe is resolved


# -- a network without parameters ---------------------------------------------------------------------
FLIP = '''
import torch
from torch import nn
from unpaired import Component, hookimpl


class Flip(nn.Module):
    """Mirror images left to right: a network with no parameters or buffers."""

    def forward(self, x):
        return torch.flip(x, dims=[-1])


@hookimpl
def unpaired_components():
    return [Component("generator", "flip", Flip)]
'''


@pytest.mark.slow
def test_a_parameter_free_network_resumes_translates_and_evaluates(tmp_path):
    (tmp_path / "flipnet.py").write_text(FLIP)
    spec = {"base": "cyclegan-fashion", "plugins": ["flipnet"],
            "networks": {"flip": {"type": "flip", "init": "none"}},
            "images": {"flipped_A": {"net": "flip", "input": "real_A"}, "fake_B": {"net": "G_AB", "input": "flipped_A"}},
            "inference": {"AtoB": ["flip", "G_AB"]}}
    overrides = [*TINY, "train.max_iterations=2", "eval.num_images=8", "eval.metrics.kid.args.subset_size=4",
                 f"out_dir={tmp_path / 'run'}"]
    Trainer(load_recipe(spec, overrides, base_dir=tmp_path)).fit()
    resumed = Trainer.resume(tmp_path / "run", ["train.max_iterations=4"])
    assert resumed.fit().iteration == 4
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    translator = Translator(tmp_path / "run", "AtoB", "cpu", scale="native")
    with torch.no_grad():
        assert torch.allclose(translator(x), resumed.nets["G_AB"].eval()(torch.flip(x, dims=[-1])), atol=1e-6)
    result, _ = evaluate_run(tmp_path / "run", device="cpu")
    assert 0 <= result.metrics["AtoB"]["target_accuracy"] <= 1


# -- handlers with state: the EMA ---------------------------------------------------------------------
EMA_ARGS = ["handlers.ema.type=ema", "handlers.ema.args.networks=[G_AB]", "handlers.ema.args.decay=0.5"]


def test_the_ema_handler_averages_after_each_iteration(tiny_recipe):
    """decay 0.5 from the initial weights: after 3 iterations the average is
    0.125 w0 + 0.125 w1 + 0.25 w2 + 0.5 w3 (StarGAN v2's moving_average, timm's lerp)."""
    seen = []

    class Record:
        @hookimpl(trylast=True)
        def unpaired_after_step(self, trainer):
            seen.append({k: v.clone() for k, v in trainer.nets["G_AB"].state_dict().items()})

    trainer = Trainer(tiny_recipe("train.max_iterations=3", *EMA_ARGS), hooks=[Record()])
    w0 = {k: v.clone() for k, v in trainer.nets["G_AB"].state_dict().items()}
    trainer.fit()
    ema = load_file(str(checkpoint.latest(trainer.out_dir) / "weights.ema.safetensors"))
    for k, v in w0.items():
        if v.is_floating_point():
            expected = 0.125 * v + 0.125 * seen[0][k] + 0.25 * seen[1][k] + 0.5 * seen[2][k]
            torch.testing.assert_close(ema[f"G_AB.{k}"], expected, rtol=0, atol=1e-6)
    assert checkpoint.weight_sets(checkpoint.latest(trainer.out_dir)) == ["ema"]


@pytest.mark.slow
def test_translate_evaluate_and_export_use_the_ema_when_asked(tiny_recipe, tmp_path, capsys):
    Trainer(tiny_recipe("train.max_iterations=3", "eval.num_images=8", "eval.metrics.kid.args.subset_size=4",
                        *EMA_ARGS)).fit()
    run = tmp_path / "run"
    ema = load_file(str(checkpoint.latest(run) / "weights.ema.safetensors"))
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    raw, averaged = Translator(run, "AtoB", "cpu"), Translator(run, "AtoB", "cpu", weights="ema")
    assert all(torch.equal(averaged.nets["G_AB"].state_dict()[k], v) for k, v in
               ((k.split(".", 1)[1], v) for k, v in ema.items()))
    assert not torch.allclose(raw(x), averaged(x))
    assert main(["translate", str(run), "--weights", "ema", "--out", str(tmp_path / "t")]) == 0
    assert "translated 32" in capsys.readouterr().out  # the 32 test images of the tiny recipe
    result, path = evaluate_run(run, device="cpu", weights="ema")
    assert path.parent.name == "iter_00000003-ema" and result.protocol["weights"] == "ema"
    assert main(["export", str(run), "--format", "torchscript", "--weights", "ema", "--out", str(tmp_path / "e.pt")]) == 0
    assert "weights           ema" in capsys.readouterr().out
    with pytest.raises(Exception) as err:
        Translator(run, "AtoB", "cpu", weights="nope")
    assert err.value.code == "no-weight-set"


def test_handlers_keeping_state_under_one_key_are_refused(tiny_recipe):
    class Keeper:
        state_key = "same"

        @hookimpl
        def unpaired_state_dict(self, trainer):
            return {}

    with pytest.raises(RecipeError) as err:
        Trainer(tiny_recipe(), hooks=[Keeper(), Keeper()])
    assert (err.value.key, err.value.code) == ("same", "state-key")


# -- diagnostics ------------------------------------------------------------------------------------
class ReportingLSGAN(LSGANLoss):
    """LSGAN that reports the mean of D's logits on real images."""

    seen: list = []

    def discriminator_loss(self, discriminator, real, fake):
        logits = discriminator(real)
        report("D_real", logits)
        ReportingLSGAN.seen.append(float(logits.mean()))
        return self.criterion(logits, True, True) + self.criterion(discriminator(fake), False, True)


@pytest.mark.slow
def test_a_reported_diagnostic_is_logged_with_the_losses(tiny_recipe, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ReportingLSGAN.seen = []
    reg = registry_with(Component("adversarial_loss", "reporting", ReportingLSGAN))
    trainer = Trainer(tiny_recipe("train.max_iterations=4", "train.log_every=2",
                                  "steps.discriminators.losses.D_A.adversarial=reporting"), registry=reg)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    logged = [r["discriminators/D_A/D_real"] for r in records]
    assert logged == pytest.approx([sum(ReportingLSGAN.seen[:2]) / 2, sum(ReportingLSGAN.seen[2:]) / 2], rel=1e-5)
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert [e.value for e in events.Scalars("discriminators/D_A/D_real")] == pytest.approx(logged, rel=1e-5)
    assert "D_real" not in str(trainer.bar)  # the progress bar shows losses only


@pytest.mark.slow
def test_a_handler_reports_into_the_same_records(tiny_recipe, tmp_path):
    class Counter:
        @hookimpl
        def unpaired_after_step(self, trainer):
            report("handler/iteration", trainer.iteration)

    Trainer(tiny_recipe("train.max_iterations=4", "train.log_every=2"), hooks=[Counter()]).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["handler/iteration"] for r in records] == [1.5, 3.5]


# -- components: kinds and aliases --------------------------------------------------------------------
def test_a_package_adds_a_component_kind():
    flip = Component("image_filter", "hflip", lambda: torch.fliplr)
    with pytest.raises(RecipeError) as err:
        registry_with(flip)
    assert err.value.code == "unknown-kind"
    reg = registry_with(flip, kinds={"image_filter": "callable(images) -> images"})
    assert reg.names("image_filter") == ["hflip"] and reg.kinds["image_filter"].startswith("callable")


def test_plugins_lists_a_kind_a_recipes_plugin_adds(tmp_path, monkeypatch, capsys):
    plugin = types.ModuleType("augment_plugin")
    plugin.unpaired_component_kinds = hookimpl(lambda: {"image_filter": "callable(images) -> images"})
    plugin.unpaired_components = hookimpl(lambda: [Component("image_filter", "hflip", lambda: torch.fliplr)])
    monkeypatch.setitem(sys.modules, "augment_plugin", plugin)
    recipe = tmp_path / "aug.yaml"
    recipe.write_text("base: cyclegan-fashion\nplugins: [augment_plugin]\n")
    assert main(["plugins", "--recipe", str(recipe), "--kind", "image_filter"]) == 0
    assert "hflip" in capsys.readouterr().out
    assert main(["plugins", "--kind", "image_filter"]) == 2  # without the recipe's plugins, no such kind
    assert "unknown kind 'image_filter'" in capsys.readouterr().err


def test_a_renamed_component_keeps_its_old_name(capsys):
    reg = registry_with(Component("generator", "tiny_resnet_v2", nn.Identity, aliases=("tiny_resnet",)))
    assert reg.get("generator", "tiny_resnet", "networks.G_AB").name == "tiny_resnet_v2"
    assert "generator 'tiny_resnet' is now called 'tiny_resnet_v2'" in capsys.readouterr().err


def test_a_renamed_loss_still_declares_the_images_it_reads():
    class Reads(nn.Module):
        image_args = ("other",)

        def __init__(self, other: str = "rec_A"):
            super().__init__()

    reg = registry_with(Component("consistency_loss", "reads_v2", Reads, aliases=("reads",)))
    assert reg.current_name("consistency_loss", "reads") == "reads_v2" and reg.current_name("generator", "x") is None
    spec = OmegaConf.merge(OmegaConf.structured(LossTerm), {"consistency": "reads", "input": "fake_B",
                                                            "target": "real_A", "args": {"other": "idt_B"}})
    term = resolve_term("g", "t", spec, OmegaConf.create({"networks": ["G"]}), reg)
    assert term.reads == ("idt_B",)


# -- the previous release's run directory --------------------------------------------------------------
@pytest.mark.slow
def test_a_run_of_the_previous_release_resumes_translates_and_evaluates(tmp_path):
    """tests/fixtures/run-0.1: 2 epochs of the tiny demo written by the release before the core's
    reshape (format unpaired/1: step_* checkpoints, "step" in log records and counters)."""
    run = tmp_path / "old"
    shutil.copytree(REPO / "tests" / "fixtures" / "run-0.1", run)
    assert checkpoint.latest(run).name == "step_00000008"
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    assert Translator(run, "AtoB", "cpu")(x).shape == (2, 1, 28, 28)
    result, path = evaluate_run(run, device="cpu")
    assert path == run / "eval" / "step_00000008" / "metrics.json" and result.protocol["iteration"] == 8
    trainer = Trainer.resume(run, ["train.epochs=3"])
    assert (trainer.iteration, trainer.epoch) == (8, 2)
    assert trainer.fit().iteration == 12
    assert checkpoint.latest(run).name == "iter_00000012"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all("iteration" in r and "step" not in r for r in records) and records[-1]["iteration"] == 12


# -- the layout -------------------------------------------------------------------------------------
@pytest.mark.subprocess
def test_importing_a_plugin_module_loads_neither_the_trainer_nor_tensorboard():
    modules = sorted({ep.value for ep in entry_points(group="unpaired")})
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "print([m for m in ('unpaired.loop.trainer', 'unpaired.evaluation.evaluator', 'torch.utils.tensorboard') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert len(modules) >= 12 and out.strip() == "[]"


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The ``unpaired`` modules a file imports, anywhere in it (functions included): ``from a.b
    import c`` imports module ``a.b.c`` when there is one, else ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= subs or {node.module}
    return found & modules


def test_no_module_imports_one_that_imports_it_back():
    root = REPO / "unpaired"
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph = {m: _imports(p, set(modules)) - {m, "unpaired"} for m, p in modules.items()}

    def reaches(start: str, goal: str, seen: set) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert cycles == [], cycles
    assert len(graph) > 40 and graph["unpaired.plugin.registry"] == {"unpaired.errors", "unpaired.plugin.hookspecs"}
