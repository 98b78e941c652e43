"""Recipe language v2: random nodes, values other than images, named outputs, labels to a
discriminator, gradient penalties as terms, schedules on loss weights, shared optimizers, EMA
networks, and inference steered by a target domain, a seed or a reference image."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.io import write_png

from unpaired import RecipeError
from unpaired.cli import main
from unpaired.data.io import to_uint8
from unpaired.engine.executor import Executor
from unpaired.inference.translator import Translator
from unpaired.loop.trainer import Trainer
from unpaired.recipe.graph import ImageGraph
from unpaired.recipe.load import load_recipe
from unpaired.recipe.scalar import parse_scalar, scalar_problems
from unpaired.recipe.validate import validate
from unpaired.runs import checkpoint
from unpaired.runtime.distributed import DistInfo
from unpaired.tools.check import check_all
from unpaired_plugins.losses.adversarial import gradient_penalty
from unpaired_plugins.losses.penalties import R1, InterpolatedGP

#: StarGAN v2's Fashion recipe shrunk to seconds: 3 classes, 8 images each, networks 8 wide.
TINY_STARGAN = [
    "data.args.classes=[0,1,7]", "data.args.limit=8", "data.batch_size=4", "device=cpu",
    "networks.G.args.base_dim=8", "networks.G.args.max_conv_dim=16",
    "networks.E.args.base_dim=8", "networks.E.args.max_conv_dim=16", "networks.E.args.num_domains=3",
    "networks.D.args.base_dim=8", "networks.D.args.max_conv_dim=16", "networks.D.args.num_domains=3",
    "networks.M.args.hidden_dim=16", "networks.M.args.num_domains=3",
    "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=1000", "eval.num_images=4",
    "eval.metrics.kid.args.subset_size=4",
]


@pytest.fixture
def tiny_stargan(tmp_path):
    def make(*overrides):
        return load_recipe("stargan-v2-fashion", TINY_STARGAN + [f"out_dir={tmp_path / 'run'}", *overrides])
    return make


# -- gradient penalties, by hand --------------------------------------------------------------------------
def squares(x):
    """D(x) = sum of squares per sample: its gradient is 2x, so every penalty has a closed form."""
    return (x ** 2).flatten(1).sum(1)


def test_r1_is_half_the_mean_squared_gradient_norm():
    x = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]], [[[3.0, 1.0], [-1.0, 2.0]]]])  # (2, 1, 2, 2)
    # |2x|^2 per sample: 4 * (1 + 4 + 0.25) = 21 and 4 * (9 + 1 + 1 + 4) = 60; half their mean
    assert R1()(squares, x).item() == pytest.approx(0.5 * (21 + 60) / 2)


def test_penalties_on_interpolates_by_hand():
    real = torch.full((2, 1, 1, 2), 1.0)
    fake = torch.full((2, 1, 1, 2), -1.0)
    eps = torch.tensor([0.75, 0.25])  # x_hat = 0.5 and -0.5 everywhere: |grad| = |2 x_hat| * sqrt(2) = sqrt(2)
    assert gradient_penalty(squares, real, fake, eps, center=0.0).item() == pytest.approx(2.0)
    assert gradient_penalty(squares, real, fake, eps).item() == pytest.approx((math.sqrt(2) - 1) ** 2)
    torch.manual_seed(0)  # the plugin draws eps itself
    drawn = torch.rand(2, 1, 1, 1)
    torch.manual_seed(0)
    expected = (((2 * (drawn * real + (1 - drawn) * fake)).flatten(1).norm(dim=1)) ** 2).mean()
    assert InterpolatedGP(0.0)(squares, real, fake).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="fake"):
        InterpolatedGP()(squares, real)


def test_a_penalty_runs_in_fp32_under_autocast():
    seen = []

    class Tiny(nn.Module):
        def forward(self, x):
            seen.append(x.dtype)
            return squares(x)

    executor = Executor.__new__(Executor)  # only term_value's penalty path
    executor.device, executor.fwd = torch.device("cpu"), {"D": Tiny()}
    executor.losses = {("D", "r1"): R1()}
    from unpaired.recipe.plan import Term
    from unpaired.plugin.registry import Spec

    term = Term("D", "r1", Spec("gradient_penalty", "r1", {}, "x"), parse_scalar(1), discriminator="D", real="real")
    real = torch.randn(2, 1, 4, 4).bfloat16()
    with torch.autocast("cpu", torch.bfloat16):
        value = executor.term_value(type("P", (), {"name": "D"})(), term, {"real": real}, {})
    assert seen == [torch.float32] and value.dtype == torch.float32
    assert value.item() == pytest.approx(R1()(squares, real.float()).item())


# -- schedules -----------------------------------------------------------------------------------------------
def test_a_linear_weight_schedule_at_chosen_iterations():
    w = parse_scalar({"schedule": "linear", "start": 1, "end": 0, "length": 1000})
    assert [w.at(i) for i in (0, 250, 999, 1000, 5000)] == [1.0, 0.75, pytest.approx(0.001), 0.0, 0.0]
    cos = parse_scalar({"schedule": "cosine", "start": 1, "end": 0.1, "length": 10, "per": "epoch"})
    assert cos.at(123, epoch=5) == pytest.approx(0.55) and cos.at(0, epoch=10) == pytest.approx(0.1)
    step = parse_scalar({"schedule": "step", "start": 2, "gamma": 0.5, "length": 3})
    assert [step.at(i) for i in (0, 2, 3, 6)] == [2, 2, 1, 0.5]
    assert parse_scalar(10).at(99) == 10 and not parse_scalar(10).scheduled
    assert {p[0] for p in scalar_problems({"schedule": "linaer", "start": 1, "lenght": 3}, "w")} == {
        "w.schedule", "w.lenght"}
    # NaN and infinite weights, and a step schedule that flips sign or jumps to zero, are refused
    assert [p[:2] for p in scalar_problems(float("nan"), "w")] == [("w", "bad-value")]
    assert [p[:2] for p in scalar_problems({"schedule": "linear", "start": float("inf"), "length": 3}, "w")] == [
        ("w.start", "bad-value")]
    for gamma in (-0.5, 0):
        assert [p[:2] for p in scalar_problems({"schedule": "step", "start": 1, "gamma": gamma}, "w")] == [
            ("w.gamma", "not-positive")]


def test_a_scheduled_weight_is_applied_and_logged(tiny_recipe, tmp_path):
    """cycle weight 10 -> 0 over 4 iterations: the executor logs 10, 7.5, 5, 2.5 and the G step's
    total is the weighted sum at each iteration."""
    recipe = tiny_recipe("train.max_iterations=4", "train.log_every=1",
                         "steps.generators.losses.cycle_A.weight={schedule: linear, start: 10, end: 0, length: 4}")
    trainer = Trainer(recipe)
    trainer.fit()
    logged = [r["weights/generators/cycle_A"] for r in trainer.history if "weights/generators/cycle_A" in r]
    assert logged == pytest.approx([10, 7.5, 5, 2.5])
    assert "weights/generators/cycle_B" not in trainer.history[0]  # constant weights are not logged


# -- random nodes, values other than images, named outputs -------------------------------------------------
def test_random_nodes_are_the_same_after_resume_and_differ_across_ranks(tiny_stargan):
    recipe = tiny_stargan()
    a = Executor(recipe, device="cpu")
    batch = {"real": torch.zeros(4, 1, 32, 32)}
    first = a.graph.make("z_trg", a.fwd, batch, a.generator)
    assert first.shape == (4, 16)
    state = a.state_dict()
    after = a.graph.make("z_trg", a.fwd, batch, a.generator)
    b = Executor(recipe, device="cpu")
    b.load_state_dict(state)
    assert torch.equal(b.graph.make("z_trg", b.fwd, batch, b.generator), after)
    other_rank = Executor(recipe, device="cpu", dist=DistInfo(rank=1))
    assert not torch.equal(other_rank.graph.make("z_trg", other_rank.fwd, batch, other_rank.generator), first)


def test_labels_codes_and_named_outputs_flow_through_the_graph():
    class Encoder(nn.Module):
        def forward(self, x):
            return {"content": x * 2, "style": x.mean((1, 2, 3))}

    graph = ImageGraph({
        "y": {"random": "integer", "high": 3},
        "z": {"random": "uniform", "shape": [2], "low": -1, "high": 1},
        "content": {"net": "E", "input": "real_A", "output": "content"},
        "style": {"net": "E", "input": "real_A", "output": "style"},
    })
    x = torch.ones(5, 1, 2, 2)
    out = graph.compute(["y", "z", "content", "style"], {"E": Encoder()}, {"real_A": x}, torch.Generator().manual_seed(0))
    assert out["y"].dtype == torch.int64 and out["y"].shape == (5,) and set(out["y"].tolist()) <= {0, 1, 2}
    assert out["z"].shape == (5, 2) and out["z"].abs().max() <= 1
    assert torch.equal(out["content"], x * 2) and out["style"].shape == (5,)
    bad = ImageGraph({"c": {"net": "E", "input": "real_A", "output": "texture"}})
    with pytest.raises(ValueError, match="returns the outputs content, style, not 'texture'"):
        bad.compute(["c"], {"E": Encoder()}, {"real_A": x})


def test_bad_random_nodes_weights_and_shared_optimizers_are_named():
    recipe = load_recipe("stargan-v2-fashion", [
        "images.z_trg.shape=[0]", "images.z_trg2.random=gaussian", "images.y={random: integer}",
        "steps.G_latent.losses.ds.weight={schedule: linear, start: -1, end: 0, length: 10}",
        "steps.G_reference.optimizer.args={lr: 0.1}", "steps.D_reference.optimizer.share=G_reference",
        "steps.D_latent.losses.adv.pool=50"])
    keys = {(p.key, p.code) for p in validate(recipe)}
    assert {("images.z_trg.shape", "bad-value"), ("images.z_trg2.random", "bad-value"), ("images.y.high", "missing"),
            ("steps.G_latent.losses.ds.weight", "negative"), ("steps.G_reference.optimizer.args", "ignored-args"),
            ("steps.D_reference.optimizer.share", "bad-share"), ("steps.D_latent.losses.adv.pool", "pool-with-label"),
            } <= keys


def test_keys_that_would_do_nothing_are_named():
    recipe = load_recipe("stargan-v2-fashion", [
        "images.z_trg.low=-1", "images.y_any={random: integer, high: 10, op: sb_rollout}",
        "steps.G_latent.losses.adv.real_label=domain", "steps.D_latent.losses.r1.pool=5"])
    keys = {(p.key, p.code) for p in validate(recipe)}
    assert {("images.z_trg.low", "ignored-args"), ("images.y_any", "bad-image"),
            ("steps.G_latent.losses.adv.real_label", "ignored-args"), ("steps.D_latent.losses.r1.pool", "ignored-args"),
            } <= keys


# -- StarGAN v2 on the ten Fashion-MNIST classes ---------------------------------------------------------
def test_both_stargan_v2_recipes_pass_the_check(tmp_path):
    assert check_all(load_recipe("stargan-v2-fashion")) == []
    from conftest import write_images

    for split in ("train", "test"):  # AFHQ's layout, three domains, at its 256 pixels
        for i, animal in enumerate(("cat", "dog", "wild")):
            write_images(tmp_path / "afhq" / split / animal, 2, size=256, seed=i)
    assert check_all(load_recipe("stargan-v2", [f"data.args.root={tmp_path / 'afhq'}"])) == []


def test_more_domains_than_a_networks_heads_is_a_problem_before_training(tiny_stargan):
    """Four classes for networks with three domain heads: label 3 would index past them mid-training
    (IndexError in D's head); the check and the trainer name each network's num_domains instead."""
    recipe = tiny_stargan("data.args.classes=[0,1,7,9]")
    problems = [(p.key, p.code) for p in check_all(recipe)]
    assert problems == [(f"networks.{n}.args.num_domains", "too-few-domains") for n in ("M", "E", "D")]
    with pytest.raises(RecipeError) as err:
        Trainer(recipe)
    assert err.value.code == "too-few-domains" and "set networks.M.args.num_domains=4" in str(err.value)
    assert "T-shirt/top, Trouser, Sneaker, Ankle boot" in str(err.value)


def test_a_multi_domain_run_on_folders_the_classifier_does_not_know_evaluates(tmp_path):
    """Domains cat, dog, fox on folders: the Fashion-MNIST judge has no such classes, so the target
    accuracy is skipped (and says why) while FID and the cycle error are scored; it failed the
    first evaluation ('cat' is not a class of the classifier)."""
    from unpaired.evaluation.entry import evaluate_run

    for split in ("train", "test"):
        for k, name in enumerate(("cat", "dog", "fox")):
            folder = tmp_path / "animals" / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                write_png(torch.full((1, 32, 32), 60 * k + 10 * i, dtype=torch.uint8), str(folder / f"{i}.png"))
    (tmp_path / "animals.yaml").write_text(
        f"base: stargan-v2-fashion\ndata:\n  dataset: domain_folders\n"
        f"  args: {{root: {tmp_path / 'animals'}, channels: 1, load_size: 32, crop_size: 32}}\n")
    tiny = [o for o in TINY_STARGAN if not o.startswith("data.args.")]
    recipe = load_recipe(tmp_path / "animals.yaml", [*tiny, f"out_dir={tmp_path / 'run'}", "train.max_iterations=2"])
    assert check_all(recipe) == []
    Trainer(recipe).fit()
    result, _ = evaluate_run(tmp_path / "run", device="cpu")
    assert {"fid", "cycle_l1"} <= set(result.metrics["latent/cat"]) and "target_accuracy" not in result.metrics["latent/cat"]
    assert "target_class" in result.skipped["latent/cat"]["classifier"]


def test_an_iteration_runs_the_authors_updates_in_order(tiny_stargan):
    """Two D steps on one Adam, G + M + E then G alone on another; R1 on the reals; the mapping
    network at its own learning rate; each step with the images its networks' updates changed."""
    ex = Executor(tiny_stargan(), device="cpu")
    assert ex.optimizers["D_reference"] is ex.optimizers["D_latent"]
    assert ex.optimizers["G_reference"] is ex.optimizers["G_latent"]
    assert [g["lr"] for g in ex.optimizers["G_latent"].param_groups] == [1e-4, 1e-6]
    from unpaired.data.build import build_dataset, training_pairs
    from unpaired.data.pairs import collate_pairs

    pairs = training_pairs(build_dataset(ex.recipe), 0)
    batch = collate_pairs([pairs[i] for i in range(4)])
    assert batch["domain"].tolist() == [0, 1, 2, 0] and batch["ref"].shape == (4, 1, 32, 32)
    before = {n: [p.clone() for p in net.parameters()] for n, net in ex.nets.items()}
    values = ex.run_iteration(batch, 0)
    assert {"D_latent/adv", "D_latent/r1", "D_reference/r1", "G_latent/ds", "G_reference/cyc"} <= set(values)
    assert values["weights/G_latent/ds"].item() == 1.0 and values["G_latent/ds"] < 0
    for n in ("G", "M", "E", "D"):
        assert any(not torch.equal(a, b) for a, b in zip(before[n], ex.nets[n].parameters())), n


def test_stargan_v2_trains_resumes_translates_and_evaluates(tiny_stargan, tmp_path, capsys):
    recipe = tiny_stargan("train.max_iterations=3")
    Trainer(recipe).fit()
    run = tmp_path / "run"
    assert checkpoint.weight_sets(checkpoint.latest(run)) == ["ema"]
    capsys.readouterr()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    latent = Translator(run, "latent", "cpu", to="Trouser", seed=3)
    assert "using the EMA weights of G, M, E" in capsys.readouterr().err
    one, again = latent(x), latent(x)
    assert torch.equal(one, again) and one.shape == x.shape
    latent.condition("Trouser", seed=4)
    assert not torch.equal(latent(x), one)  # another seed, another style
    ema = load_file(str(checkpoint.latest(run) / "weights.ema.safetensors"))
    assert torch.equal(latent.nets["G"].state_dict()["from_rgb.weight"], ema["G.from_rgb.weight"])
    raw = Translator(run, "latent", "cpu", to=1, weights="raw")
    assert not torch.equal(raw.nets["G"].state_dict()["from_rgb.weight"], ema["G.from_rgb.weight"])
    with pytest.raises(RecipeError, match="Sneaker"):
        Translator(run, "latent", "cpu", to="Sandal")  # not one of the run's 3 classes: they are listed
    with pytest.raises(RecipeError, match="--style-from"):
        Translator(run, "reference", "cpu", to=0)
    ref = Translator(run, "reference", "cpu", to="sneaker", reference=x[0])
    assert ref(x).shape == x.shape
    out = tmp_path / "styles"
    assert main(["translate", str(run), "--direction", "latent", "--to", "Trouser", "--styles", "2",
                 "--out", str(out)]) == 0
    assert len(list((out / "style1").glob("*.png"))) == 16  # the 8 test images of each of the two other classes
    result, _ = __import__("unpaired.evaluation.entry", fromlist=["x"]).evaluate_run(run, device="cpu")
    means = result.metrics["latent/mean"]
    assert {"target_accuracy", "fid", "style_diversity", "cycle_l1"} <= set(means)
    assert set(result.metrics) >= {"latent/T-shirt/top", "reference/Sneaker", "reference/mean"}
    capsys.readouterr()
    assert main(["export", str(run), "--direction", "latent", "--format", "torchscript", "--to", "Trouser",
                 "--seed", "3", "--out", str(tmp_path / "latent.pt")]) == 0
    said = capsys.readouterr().out
    assert "target domain 1, style seed 3 (fixed in the file)" in said
    traced = torch.jit.load(str(tmp_path / "latent.pt"))
    latent.condition("Trouser", seed=3)
    torch.testing.assert_close(traced(x), latent(x), rtol=0, atol=1e-4)  # the same draw, fixed in the file
    # a reference of another size than the networks' 32x32: its style is taken at their scale, as translate does
    write_png(to_uint8(torch.rand(1, 45, 60) * 2 - 1), str(tmp_path / "ref.png"))
    assert main(["export", str(run), "--direction", "reference", "--format", "torchscript", "--to", "Trouser",
                 "--style-from", str(tmp_path / "ref.png"), "--out", str(tmp_path / "ref.pt")]) == 0
    ref.condition("Trouser", reference=tmp_path / "ref.png")
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "ref.pt"))(x), ref(x), rtol=0, atol=1e-4)
    assert main(["translate", str(run), "--direction", "reference", "--to", "Trouser", "--style-from", str(tmp_path / "ref.png"),
                 "--styles", "2", "--out", str(tmp_path / "same")]) == 2  # one reference, one style: identical files
    assert "translates the same for every seed" in capsys.readouterr().err
    resumed = Trainer.resume(run, ["train.max_iterations=4"])
    resumed.fit()
    assert resumed.iteration == 4


# -- EMA networks declared in the recipe -------------------------------------------------------------------
def test_the_recipes_ema_section_averages_and_is_used_by_default(tiny_recipe, tmp_path, capsys):
    """decay 0.5: after 3 iterations the average is 0.125 w0 + 0.125 w1 + 0.25 w2 + 0.5 w3."""
    seen = []

    class Record:
        @__import__("unpaired").hookimpl(trylast=True)
        def unpaired_after_step(self, trainer):
            seen.append({k: v.clone() for k, v in trainer.nets["G_AB"].state_dict().items()})

    trainer = Trainer(tiny_recipe("train.max_iterations=3", "ema={networks: [G_AB, G_BA], decay: 0.5}"), hooks=[Record()])
    w0 = {k: v.clone() for k, v in trainer.nets["G_AB"].state_dict().items()}
    trainer.fit()
    run = tmp_path / "run"
    # evaluation and sample grids during training see the averages
    assert trainer.inference_nets()["G_AB"] is trainer.ema.averages["G_AB"].module
    assert trainer.inference_nets()["D_A"] is trainer.executor.fwd["D_A"]
    ema = load_file(str(checkpoint.latest(run) / "weights.ema.safetensors"))
    for k, v in w0.items():
        if v.is_floating_point():
            expected = 0.125 * v + 0.125 * seen[0][k] + 0.25 * seen[1][k] + 0.5 * seen[2][k]
            torch.testing.assert_close(ema[f"G_AB.{k}"], expected, rtol=0, atol=1e-6)
    capsys.readouterr()
    default, raw = Translator(run, "AtoB", "cpu"), Translator(run, "AtoB", "cpu", weights="raw")
    assert "using the EMA weights of G_AB, G_BA" in capsys.readouterr().err
    assert default.weights == "ema" and raw.weights is None
    assert torch.equal(default.nets["G_AB"].state_dict()["model.1.weight"], ema["G_AB.model.1.weight"])
    assert not torch.equal(raw.nets["G_AB"].state_dict()["model.1.weight"], ema["G_AB.model.1.weight"])
    problems = {(p.key, p.code) for p in validate(tiny_recipe("ema={networks: [D_A], decay: 1.5}"))}
    assert {("ema.networks", "discriminator"), ("ema.decay", "bad-value")} <= problems


# -- inheritance papercuts ------------------------------------------------------------------------------------
def test_a_derived_recipe_reorders_steps_removes_inference_and_is_told_about_ignored_args(tmp_path):
    (tmp_path / "reordered.yaml").write_text("base: cyclegan-fashion\nsteps:\n  discriminators: {}\n  generators: {}\n"
                                              "inference:\n  BtoA: null\n")
    recipe = load_recipe(tmp_path / "reordered.yaml")
    assert list(recipe.steps) == ["discriminators", "generators"] and list(recipe.inference) == ["AtoB"]
    (tmp_path / "partial.yaml").write_text("base: stargan-v2-fashion\nsteps:\n  G_reference: {every: 1}\n"
                                            "  D_latent: {every: 1}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(tmp_path / "partial.yaml")
    assert err.value.code == "step-order" and "List every step" in str(err.value)
    (tmp_path / "shared.yaml").write_text("base: cut-fashion\nsteps:\n  generator:\n    losses:\n"
                                           "      nce_idt: {args: {nce_T: 0.5}}\n")
    assert ("steps.generator.losses.nce_idt.args", "ignored-args") in {
        (p.key, p.code) for p in validate(load_recipe(tmp_path / "shared.yaml"))}


def test_command_line_overrides_reorder_steps_as_a_derived_recipe_does():
    recipe = load_recipe("cyclegan-fashion", ["steps={discriminators: {}, generators: {}}"])
    assert list(recipe.steps) == ["discriminators", "generators"]
    assert recipe.steps.generators == load_recipe("cyclegan-fashion").steps.generators  # nothing else changed
    with pytest.raises(RecipeError) as err:
        load_recipe("stargan-v2-fashion", ["steps={G_reference: {every: 1}, D_latent: {every: 1}}"])
    assert err.value.code == "step-order" and "command-line override" in str(err.value)
    # dotted keys edit steps in place, in whatever order they are typed
    edited = load_recipe("stargan-v2-fashion", ["steps.G_reference.every=1", "steps.D_latent.every=1"])
    assert list(edited.steps) == list(load_recipe("stargan-v2-fashion").steps)


def test_a_second_sample_of_each_domain(tiny_recipe):
    """UNSB's real_A2: another random image of domain A in each sample, the first pair unchanged."""
    from unpaired.data.build import build_dataset, training_pairs

    recipe = tiny_recipe("data.second_sample=true", "images.fake_B2={net: G_AB, input: real_A2}",
                         "steps.generators.losses.second={consistency: l1, input: fake_B2, target: real_B2, weight: 0.1}",
                         "train.max_iterations=2")
    assert check_all(recipe) == []
    data = build_dataset(Trainer(recipe).recipe)
    with_second, without = training_pairs(data, 0, True), training_pairs(data, 0)
    item, plain = with_second[(0, 3)], without[(0, 3)]
    assert torch.equal(item["real_A"], plain["real_A"]) and torch.equal(item["real_B"], plain["real_B"])
    assert not torch.equal(item["real_A2"], item["real_A"]) and item["real_B2"].shape == item["real_B"].shape
    trainer = Trainer(recipe)
    trainer.fit()
    assert "generators/second" in trainer.history[-1]
    bad = tiny_recipe("images.x={net: G_AB, input: real_A2}")  # without data.second_sample there is none
    assert ("images.x.input", "unknown-image") in {(p.key, p.code) for p in validate(bad)}
