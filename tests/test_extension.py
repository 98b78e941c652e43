"""Extending the framework without touching the trainer: multi-input images, paired data, losses
with context and parameters, step frequency, per-iteration schedules, events, roles, inference."""

from __future__ import annotations

import math
import re
import types
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from unpaired import Component, RecipeError, hookimpl
from unpaired.runs import checkpoint
from unpaired.tools.check import check_all
from unpaired.engine.executor import Executor
from unpaired.recipe.graph import ImageGraph
from unpaired.inference.translator import Translator
from unpaired.recipe.load import load_recipe
from unpaired.recipe.validate import validate
from unpaired.plugin.registry import Registry
from unpaired.loop.trainer import Trainer

from conftest import TINY, raises

#: pix2pix on Fashion-MNIST edges -> photo, at toy size.
TINY_PIX2PIX = ["data.args.limit=32", "data.batch_size=4", "networks.G.args.ngf=8", "networks.D.args.ndf=8",
                "train.epochs=2", "train.scheduler.args.n_epochs=1", "train.scheduler.args.n_epochs_decay=1",
                "train.log_every=2", "device=cpu"]
#: CUT on the embedded sneakers -> boots, at toy size.
TINY_CUT = ["data.args.limit=16", "data.batch_size=4", "networks.G.type=resnet", "networks.G.args.n_blocks=1",
            "networks.G.args.ngf=8", "networks.D.args.ndf=8", "steps.generator.losses.nce.args.layers=[0,4,8]",
            "steps.generator.losses.nce.args.num_patches=16", "steps.generator.losses.nce.args.mlp_dim=16",
            "train.epochs=1", "train.log_every=1", "device=cpu"]


def batch(n=2, channels=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, channels, size, size, generator=g) * 2 - 1 for k in ("real_A", "real_B")}


def count_calls(ex: Executor) -> Counter:
    calls = Counter()
    for name, net in ex.nets.items():
        net.register_forward_hook(lambda mod, inp, out, name=name: calls.update([name]))
    return calls


# -- the image graph ------------------------------------------------------------------------------
def test_graph_concat_and_multi_input_networks():
    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    graph = ImageGraph({"fake_B": {"net": "G", "input": "real_A"}, "pair": {"concat": ["real_A", "fake_B"]},
                        "sum": {"net": "add", "input": ["real_A", "real_B"]}})
    x = batch(size=4)
    images = graph.compute(["pair", "sum"], {"G": lambda a: -a, "add": Add()}, x)
    assert images["pair"].shape == (2, 2, 4, 4) and torch.equal(images["pair"][:, 1:], -x["real_A"])
    assert torch.equal(images["sum"], x["real_A"] + x["real_B"])
    assert graph.order(["pair"]) == ["fake_B", "pair"] and graph.networks("pair") == {"G"}
    assert graph.sources("pair") == {"real_A"} and graph.sources("sum") == {"real_A", "real_B"}


@pytest.mark.slow
def test_image_entries_are_checked():
    cases = {
        "images.x.concat=[real_A]": "images.x.concat: name at least two images",
        "images.x.net=G_AB": "images.x: set 'net' and 'input'",
        "images.fake_B.concat=[real_A,real_B]": "images.fake_B: give either 'concat'",
        "images.x.concat=[real_A,nope]": "images.x.concat: image 'nope' is not defined.",
    }
    for override, message in cases.items():
        problems = validate(load_recipe("cyclegan-fashion", [override]))
        assert any(message in p for p in problems), (override, problems)


# -- pix2pix: paired data, a conditional discriminator, D before G --------------------------------
def test_pix2pix_runs_the_reference_passes(tmp_path):
    """The reference (pix2pix_model.py) runs G once per iteration and D three times: D(real pair) and
    D(fake pair) in D's update, then D(fake pair) in G's. D goes first here, as there: the fake pair is
    made once, with gradients, and serves both updates."""
    recipe = load_recipe("pix2pix-fashion", TINY_PIX2PIX)
    assert check_all(recipe) == []
    ex = Executor(recipe)
    assert ex.plans[0].keep_graph == {"fake_B", "fake_AB"} and ex.plans[1].fresh == {"fake_B", "fake_AB"}
    calls = count_calls(ex)
    values = ex.run_iteration(batch())
    assert calls == {"G": 1, "D": 3}
    assert set(values) == {"discriminator/D", "generator/gan", "generator/l1"}
    assert ex.nets["D"].model[0].in_channels == 2  # concat(A, B) of two grey images


@pytest.mark.slow
def test_pix2pix_trains_on_true_pairs_and_l1_falls(tmp_path):
    result = Trainer(load_recipe("pix2pix-fashion", [*TINY_PIX2PIX, "data.args.limit=64", "train.epochs=3",
                                                     "train.scheduler.args.n_epochs=3", f"out_dir={tmp_path}"])).fit()
    l1 = [r["generator/l1"] for r in result.history if "generator/l1" in r]
    assert len(l1) == 24 and sum(l1[-4:]) < 0.9 * sum(l1[:4]), l1  # e.g. 0.77 -> 0.65
    # sample grids: rows real_A, fake_B, real_B; the B row holds each edge map's true photo (test pairs)
    assert result.iteration == 48 and (result.out_dir / "samples" / "iter_00000048.png").is_file()


# -- CUT: a loss with context and its own parameters ----------------------------------------------
@pytest.mark.slow
def test_cut_trains_saves_its_head_and_translates(tmp_path):
    recipe = load_recipe("cut-fashion", [*TINY_CUT, f"out_dir={tmp_path}"])
    assert check_all(recipe) == []
    trainer = Trainer(recipe)
    head = trainer.executor.losses["generator", "nce"]
    assert trainer.executor.losses["generator", "nce_idt"] is head  # share: one head, as in CUT
    before = [p.detach().clone() for p in head.parameters()]
    opt_params = {id(p) for g in trainer.executor.optimizers["generator"].param_groups for p in g["params"]}
    assert all(id(p) in opt_params for p in head.parameters())
    result = trainer.fit()
    assert result.iteration == 4 and {"generator/nce", "generator/nce_idt", "generator/gan"} <= set(result.losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, head.parameters()))
    saved = load_file(str(checkpoint.latest(tmp_path) / checkpoint.WEIGHTS))
    head_keys = [k for k in saved if k.startswith("generator:nce.")]
    assert len(head_keys) == 2 * 2 * 3 and not any(k.startswith("generator:nce_idt.") for k in saved)
    assert torch.equal(saved["generator:nce.heads.0.0.weight"], head.heads[0][0].weight.detach())
    out = Translator(tmp_path, "AtoB", device="cpu")(torch.zeros(1, 28, 28))
    assert out.shape == (1, 28, 28) and out.abs().max() <= 1


@pytest.mark.slow
def test_resume_restores_loss_parameters_exactly(tmp_path):
    full = Trainer(load_recipe("cut-fashion", [*TINY_CUT, "train.max_iterations=4", f"out_dir={tmp_path / 'full'}"]))
    full.fit()
    Trainer(load_recipe("cut-fashion", [*TINY_CUT, "train.max_iterations=2", f"out_dir={tmp_path / 'part'}"])).fit()
    Trainer.resume(tmp_path / "part", ["train.max_iterations=4"]).fit()
    a = load_file(str(checkpoint.latest(tmp_path / "full") / checkpoint.WEIGHTS))
    b = load_file(str(checkpoint.latest(tmp_path / "part") / checkpoint.WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_loss_asks_for_context_by_parameter_name(tiny_recipe):
    seen = {}

    class Probe(nn.Module):
        """Weighted L1 whose weight is learnt; records what it was given."""

        def __init__(self, network):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))
            seen["init_network"] = network

        def forward(self, input, target, network, images, batch):
            seen.update(network=network, images=set(images), batch=set(batch))
            return self.scale * (input - target).abs().mean()

    reg = Registry()
    reg.register_plugin(types.SimpleNamespace(unpaired_components=hookimpl(lambda: [Component("consistency_loss", "probe", Probe)])))
    ex = Executor(tiny_recipe("steps.generators.losses.cycle_A.consistency=probe",
                              "steps.generators.losses.cycle_A.network=G_AB"), registry=reg)
    ex.run_iteration({**batch(size=28), "label": torch.tensor([3, 4])})
    assert seen["init_network"] is ex.nets["G_AB"] and seen["network"] is ex.nets["G_AB"]
    assert {"real_A", "rec_A", "fake_B"} <= seen["images"] and seen["batch"] == {"real_A", "real_B", "label"}
    assert ex.losses["generators", "cycle_A"].scale.item() != 1.0  # optimised by the generators' step
    assert "generators:cycle_A" in ex.modules()


def test_a_loss_that_needs_a_network_says_so(tmp_path):
    recipe = load_recipe("cut-fashion", [*TINY_CUT, "steps.generator.losses.nce.network=null"])
    with raises(RecipeError, "needs-network", key="steps.generator.losses.nce.network"):
        Executor(recipe)


# -- step frequency and per-iteration schedules ---------------------------------------------------
def test_every_and_repeat(tiny_recipe):
    """WGAN-GP's n_critic = 5: the generator step runs every 5th iteration, the critic's every one."""
    ex = Executor(tiny_recipe("steps.generators.every=5", "steps.discriminators.repeat=2", "train.batch_passes=false"))
    calls = count_calls(ex)
    runs = [set(ex.run_iteration(batch(size=28), i)) for i in range(6)]
    assert ["generators/cycle_A" in r for r in runs] == [False, False, False, False, True, False]
    assert all("discriminators/D_A" in r for r in runs)
    # generators: 3 passes each in their one step (iteration 5); 1 pass each (the fake, no_grad) in the 5 others;
    # discriminators: 2 repeats x 2 passes x 6 iterations, plus 1 pass each in the generator step
    assert calls == {"G_AB": 3 + 5, "G_BA": 3 + 5, "D_A": 24 + 1, "D_B": 24 + 1}


def test_per_iteration_schedule(tiny_recipe):
    cosine = ["train.scheduler.type=cosine", "train.scheduler.args.n_epochs=null", "train.scheduler.args.n_epochs_decay=null"]
    ex = Executor(tiny_recipe(*cosine, "train.scheduler.args.t_max=4", "train.scheduler.interval=iteration"))
    lrs = []
    for i in range(4):
        ex.run_iteration(batch(size=28), i)
        lrs.append(ex.learning_rates()["generators"])
    assert lrs == pytest.approx([2e-4 * (1 + math.cos(math.pi * k / 4)) / 2 for k in (1, 2, 3, 4)], abs=1e-12)
    ex.end_epoch(4)
    assert ex.learning_rates()["generators"] == pytest.approx(0.0, abs=1e-12)  # not stepped again per epoch
    problems = validate(tiny_recipe(*cosine, "train.scheduler.type=plateau", "train.scheduler.interval=iteration"))
    assert any("plateau follows the epoch's mean loss" in p for p in problems)


# -- events ---------------------------------------------------------------------------------------
class EMA:
    """A plugin keeping an exponential moving average of G_AB, and a per-step log, without touching the loop."""

    def __init__(self):
        self.events, self.ema, self.records = [], None, []

    @hookimpl
    def unpaired_train_start(self, trainer):
        self.events.append("start")
        self.ema = {k: v.detach().clone() for k, v in trainer.nets["G_AB"].state_dict().items()}

    @hookimpl
    def unpaired_after_step(self, trainer, losses):
        self.events.append(f"step {trainer.iteration}")
        for k, v in trainer.nets["G_AB"].state_dict().items():
            self.ema[k].mul_(0.9).add_(v.detach(), alpha=0.1) if v.is_floating_point() else None

    @hookimpl
    def unpaired_epoch_end(self, epoch):
        self.events.append(f"epoch {epoch}")

    @hookimpl
    def unpaired_checkpoint_saved(self, trainer, path):
        self.events.append(f"saved {path.name}")

    @hookimpl
    def unpaired_evaluate(self, trainer):
        return {"ema_norm": float(sum(v.float().norm() for v in self.ema.values()))}

    @hookimpl
    def unpaired_log(self, record):
        self.records.append(record)

    @hookimpl
    def unpaired_train_end(self, result):
        self.events.append(f"end {result.iteration}")


@pytest.mark.slow
def test_training_events_reach_a_plugin(tiny_recipe):
    ema = EMA()
    trainer = Trainer(tiny_recipe("train.max_iterations=10", "train.eval_every=1", "train.checkpoint_every=3"), hooks=[ema])
    result = trainer.fit()
    # the best evaluation is saved by the same writer as every checkpoint, with the same events
    assert ema.events == ["start", "step 1", "step 2", "step 3", "saved iter_00000003", "step 4", "step 5", "step 6",
                          "saved iter_00000006", "step 7", "step 8", "epoch 1", "saved iter_00000008", "saved best",
                          "step 9", "saved iter_00000009", "step 10", "saved iter_00000010", "end 10"]
    evals = [r for r in result.history if "eval/ema_norm" in r]
    assert [r["iteration"] for r in evals] == [8, 10] and evals[0]["eval/ema_norm"] > 0  # each epoch's end, and the end
    assert ema.records == result.history and (trainer.out_dir / "log.jsonl").read_text().count("eval/ema_norm") == 2
    other = Trainer(tiny_recipe("train.max_iterations=1", "out_dir=" + str(trainer.out_dir) + "-2"))
    other.fit()
    assert ema.events[-1] == "end 10"  # handlers belong to their run only


# -- recipes: roles, derived types, init none, checks that agree with training ---------------------
def test_roles_are_explicit_when_asked(tiny_recipe):
    problems = validate(tiny_recipe("networks.D_A.role=generator"))
    assert any("networks.D_A: unknown generator 'n_layers'" in p for p in problems)
    assert any("networks.G_AB.role: 'critic' is not generator" in p for p in validate(tiny_recipe("networks.G_AB.role=critic")))


def test_a_derived_recipe_that_changes_type_starts_from_its_defaults(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("base: cyclegan-fashion\nnetworks:\n  G_AB: {type: unet, args: {in_channels: 1, out_channels: 1, num_downs: 5}}\n"
                     "  G_BA: {type: resnet}\n")
    recipe = load_recipe(child)
    assert dict(recipe.networks.G_AB.args) == {"in_channels": 1, "out_channels": 1, "num_downs": 5}
    assert dict(recipe.networks.G_BA.args) == {}  # the base's ngf and channels are gone with its type
    assert dict(recipe.networks.D_A.args) == {"in_channels": 1, "ndf": 32, "n_layers": 2}  # unchanged type: kept
    # on the command line a type override edits one recipe: its args stay
    assert load_recipe("cyclegan-fashion", ["networks.G_AB.type=resnet"]).networks.G_AB.args.ngf == 32


def test_init_none_keeps_the_plugins_weights(tiny_recipe):
    default = Executor(tiny_recipe()).nets["D_A"].model[0].weight.std().item()
    kept = Executor(tiny_recipe("networks.D_A.init=none")).nets["D_A"].model[0].weight.std().item()
    assert default == pytest.approx(0.02, rel=0.2) and kept > 0.05  # PyTorch's own kaiming-uniform init


@pytest.mark.slow
def test_recipe_check_agrees_with_training(tiny_recipe):
    assert check_all(tiny_recipe("steps.generators.losses.cycle_A.consistency=ssim")) == []  # kornia SSIM: no false problem
    problems = check_all(tiny_recipe("networks.G_AB.type=unet", "networks.G_AB.args.n_blocks=null", "networks.G_AB.args.num_downs=6"))
    assert any("divisible by 64; got 28x28" in p for p in problems), problems


@pytest.mark.slow
def test_unet_run_translates_its_own_test_images(tmp_path):
    Trainer(load_recipe("pix2pix-fashion", [*TINY_PIX2PIX, "train.max_iterations=1", f"out_dir={tmp_path}"])).fit()
    translator = Translator(tmp_path, "AtoB", device="cpu")
    assert translator.size_divisor == 32
    assert translator(torch.zeros(1, 28, 28)).shape == (1, 28, 28)  # padded to 32 and cropped back
    assert translator(torch.zeros(1, 20, 44)).shape == (1, 20, 44)


# -- inference: a chain of networks or an image of the graph --------------------------------------
@pytest.mark.slow
def test_inference_by_chain_or_image(tiny_recipe, tmp_path):
    Trainer(tiny_recipe("train.max_iterations=1", "inference.cycle=[G_AB,G_BA]", "inference.rec=rec_A")).fit()
    run = tmp_path / "run"
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    chain, image = Translator(run, "cycle", device="cpu"), Translator(run, "rec", device="cpu")
    assert torch.allclose(chain(x), image(x)) and image.source_domain == "A"
    # the chain is one translation (one resize to the training scale and back): compare at the native scale
    plain = Translator(run, "AtoB", device="cpu", scale="native")
    back = Translator(run, "BtoA", device="cpu", scale="native")
    assert torch.allclose(Translator(run, "cycle", device="cpu", scale="native")(x), back(plain(x)), atol=1e-6)
    problems = validate(tiny_recipe("inference.both=D_A_pair", "images.D_A_pair={concat: [real_A, real_B]}"))
    assert any("made from real_A, real_B" in p for p in problems)


@pytest.mark.slow
def test_translate_needs_only_the_generators_plugins(tiny_recipe, tmp_path):
    plugin_dir = tmp_path / "recipes"
    plugin_dir.mkdir()
    (plugin_dir / "local_loss.py").write_text(
        "import torch\nfrom unpaired import Component, hookimpl\n"
        "class Half(torch.nn.Module):\n    def forward(self, input, target):\n        return 0.5 * (input - target).abs().mean()\n"
        "@hookimpl\ndef unpaired_components():\n    return [Component('consistency_loss', 'half_l1', Half)]\n")
    (plugin_dir / "mine.yaml").write_text("base: cyclegan-fashion\nplugins: [local_loss]\n"
                                          "steps:\n  generators:\n    losses:\n      cycle_A: {consistency: half_l1}\n")
    recipe = load_recipe(plugin_dir / "mine.yaml", [*TINY, "train.max_iterations=1", f"out_dir={tmp_path / 'run'}"])
    assert recipe.plugin_dirs == [str(plugin_dir)]  # imported from the recipe's own folder
    Trainer(recipe).fit()
    (plugin_dir / "local_loss.py").unlink()  # the loss plugin is gone: translation does not need it
    import sys

    sys.modules.pop("local_loss", None)
    out = Translator(tmp_path / "run", "AtoB", device="cpu", registry=Registry())(torch.zeros(1, 28, 28))
    assert out.shape == (1, 28, 28)


# -- a recipe's plugins: its own runs only, and clear errors when they are broken ------------------
def write_plugin_recipe(folder, module_text, loss="my_l1"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_module.py").write_text(module_text)
    (folder / "r.yaml").write_text(f"base: cyclegan-fashion\nplugins: [my_module]\n"
                                   f"steps:\n  generators:\n    losses:\n      cycle_A: {{consistency: {loss}}}\n")
    return folder / "r.yaml"


LOSS = ("import torch\nfrom unpaired import Component, hookimpl\n"
        "class L(torch.nn.Module):\n    def forward(self, input, target):\n        return (input - target).abs().mean()\n"
        "@hookimpl\ndef unpaired_components():\n    return [Component('consistency_loss', '{name}', L)]\n")


def test_a_recipes_plugins_stay_with_it(tmp_path):
    from unpaired import default_registry

    first = write_plugin_recipe(tmp_path / "one", LOSS.format(name="my_l1"))
    second = write_plugin_recipe(tmp_path / "two", LOSS.format(name="other_l1"), loss="other_l1")
    assert Executor(load_recipe(first, TINY)).losses["generators", "cycle_A"].__class__.__name__ == "L"
    assert "my_l1" not in default_registry().names("consistency_loss")  # the process-wide registry is untouched
    # another folder's module of the same name is its own module, not the first one again
    assert check_all(load_recipe(second, TINY)) == []
    assert validate(load_recipe("cyclegan-fashion", ["steps.generators.losses.cycle_A.consistency=my_l1"]))


@pytest.mark.parametrize("text, message", [
    ("def broken(:\n", r"importing plugin module 'my_module' failed at .*my_module.py:1: SyntaxError"),
    ("raise ImportError('needs foo')\n", r"importing plugin module 'my_module' failed at .*my_module.py:1: ImportError: needs foo"),
    ("from unpaired import hookimpl\n@hookimpl\ndef unpaired_components():\n    return [1]\n",
     r"plugin .*my_module: unpaired_components returned 1; it returns a list of unpaired.Component"),
    ("from unpaired import hookimpl\n@hookimpl\ndef unpaired_after_stp(trainer):\n    pass\n",
     r"unknown hook 'unpaired_after_stp'.* Did you mean 'unpaired_after_step'\?"),
    ("from unpaired import hookimpl\n@hookimpl\ndef unpaired_log(trainer, record, extra):\n    pass\n",
     r"plugin .*my_module: .*extra"),
])
def test_a_broken_plugin_module_is_reported_with_where(tmp_path, text, message):
    problems = validate(load_recipe(write_plugin_recipe(tmp_path, text), TINY))
    assert any(re.search(message, p) for p in problems), problems


def test_a_loss_returning_a_map_or_raising_names_its_term(tmp_path):
    class Map(nn.Module):
        def forward(self, input, target):
            return (input - target).abs()

    reg = Registry()
    reg.register_plugin(types.SimpleNamespace(unpaired_components=hookimpl(lambda: [Component("consistency_loss", "map", Map)])))
    ex = Executor(load_recipe("cyclegan-fashion", [*TINY, "steps.generators.losses.cycle_A.consistency=map"]), registry=reg)
    with pytest.raises(RecipeError) as err:
        ex.run_iteration(batch(size=28))
    assert (err.value.key, err.value.code) == ("steps.generators.losses.cycle_A", "not-scalar")
    assert "(2, 1, 28, 28)" in str(err.value)


def test_checks_for_what_translation_and_grids_can_show():
    problems = validate(load_recipe("pix2pix-fashion", ["samples=[real_A,fake_AB]", "inference.AtoB=D", "inference.BtoA=real_A",
                                                        "steps.generator.losses.l1.side=generator"]))
    for message in ("samples: image 'fake_AB' has 2 channels", "inference.AtoB: 'D' is a discriminator",
                    "inference.BtoA: 'real_A' is a data image", "steps.generator.losses.l1.side: only adversarial terms"):
        assert any(message in p for p in problems), (message, problems)
