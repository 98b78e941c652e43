"""Training improvements as recipe options, each against its definition: DiffAugment on every
discriminator input (Zhao et al., NeurIPS 2020), spectral normalisation (Miyato et al., ICLR 2018)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import TINY
from unpaired.engine.executor import Executor
from unpaired.loop.resume import changes
from unpaired.loop.trainer import Trainer
from unpaired.recipe.load import load_recipe
from unpaired.tools.check import check_all
from unpaired_plugins.augmentations.diffaugment import (
    AdaptiveAugment,
    DiffAugment,
    brightness,
    contrast,
    cutout,
    saturation,
    translation,
)


def test_colour_transforms_by_hand():
    x = torch.tensor([[[[0.2, -0.4]], [[0.6, 0.0]]]])  # (1, 2, 1, 2)
    u = torch.full((1, 1, 1, 1), 0.75)
    assert brightness(x, u).flatten().tolist() == pytest.approx([0.45, -0.15, 0.85, 0.25])
    # channel means per pixel: 0.4 and -0.2; deviations (-0.2, -0.2; 0.2, 0.2) times 2u = 1.5
    assert saturation(x, u).flatten().tolist() == pytest.approx([0.1, -0.5, 0.7, 0.1])
    # image mean 0.1; deviations (0.1, -0.5, 0.5, -0.1) times u + 0.5 = 1.25
    assert contrast(x, u).flatten().tolist() == pytest.approx([0.225, -0.525, 0.725, -0.025])


def test_translation_and_cutout_by_hand():
    x = torch.arange(1, 17, dtype=torch.float).reshape(1, 1, 4, 4)
    moved = translation(x, torch.tensor([[1, -2]]))  # out(i, j) = in(i + 1, j - 2), 0 outside
    assert moved[0, 0].tolist() == [[0, 0, 5, 6], [0, 0, 9, 10], [0, 0, 13, 14], [0, 0, 0, 0]]
    y = torch.ones(2, 1, 8, 8)
    cut = cutout(y, torch.tensor([[4, 4], [0, 7]]))  # a 4x4 square from (centre - 2); clipped at the border
    assert cut[0, 0, 2:6, 2:6].sum() == 0 and cut[0].sum() == 64 - 16
    assert cut[1, 0, 0:2, 5:8].sum() == 0 and cut[1].sum() == 64 - 6


def test_diffaugment_draws_per_sample_keeps_channels_together_and_passes_gradients():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(16, 1, 16, 16) * 2 - 1
    x = torch.cat([base, base], 1).requires_grad_(True)  # two equal channels: a condition and its image
    out = DiffAugment(["translation", "cutout"])(x, generator=g)
    assert out.shape == x.shape and torch.equal(out[:, 0], out[:, 1])  # one transform per sample, all channels
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert zeros.min() >= 16 and len(set(zeros.tolist())) > 1  # at least the cutout; samples differ
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: the generator learns through it
    # the same generator state, the same draws (a resumed run augments as an uninterrupted one)
    a = DiffAugment()(base, generator=torch.Generator().manual_seed(3))
    b = DiffAugment()(base, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    kept = DiffAugment(["color"], p=0.25)(base, generator=torch.Generator().manual_seed(1))
    untouched = (kept == base).flatten(1).all(1).float().mean().item()
    assert untouched == pytest.approx(0.75, abs=0.25)
    with pytest.raises(ValueError, match="policy"):
        DiffAugment(["colour"])


def test_an_augmented_discriminator_sees_augmented_inputs():
    seen = []
    recipe = load_recipe("cyclegan-fashion", [*TINY, "networks.D_B.augment={type: diffaugment, args: {policy: [cutout]}}"])
    assert check_all(recipe) == []
    ex = Executor(recipe, device="cpu")
    ex.nets["D_B"].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(4, 1, 28, 28, generator=g) * 0.5 + 0.5 for k in ("real_A", "real_B")}  # no zeros
    values = ex.run_iteration(batch)
    assert all(math.isfinite(v.item()) for v in values.values())
    assert len(seen) == 3  # G's step (fake_B), D's step (real_B, fake_B)
    for images in seen:  # every one with its 14x14 square cut out (a 7x7 corner of it at least)
        assert ((images == 0).flatten(1).sum(1) >= 7 * 7).all()


@pytest.mark.parametrize("augment", ["diffaugment", "ada"])
def test_a_run_with_augmented_discriminators_evaluates_with_the_plain_networks(augment, tmp_path):
    """Evaluation during training sees the networks, not the augmenting wrappers (a crash before)."""
    recipe = load_recipe("cyclegan-fashion", [*TINY, f"networks.D_B.augment={{type: {augment}}}", "train.epochs=1",
                                              "train.scheduler.args.n_epochs_decay=0", "train.eval_every=1",
                                              "eval.num_images=8", "eval.metrics.kid=null", f"out_dir={tmp_path}"])
    trainer = Trainer(recipe)
    assert trainer.inference_nets()["D_B"] is trainer.executor.nets["D_B"]
    trainer.fit()
    scores = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("eval/AtoB/target_accuracy" in entry for entry in scores)


def test_spectral_norm_makes_the_largest_singular_value_one():
    recipe = load_recipe("cyclegan-fashion", [*TINY, "networks.D_A.spectral_norm=true"])
    ex = Executor(recipe, device="cpu")
    D = ex.nets["D_A"]
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    x = torch.rand(2, 1, 28, 28)
    for _ in range(30):  # one power iteration per training-mode forward
        D(x)
    with torch.no_grad():
        sigmas = [torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() for m in convs]
        originals = [torch.linalg.matrix_norm(m.parametrizations.weight.original.flatten(1), ord=2).item()
                     for m in convs]
    assert sigmas == pytest.approx([1.0] * len(convs), abs=1e-3)
    assert max(originals) < 0.9  # the N(0, 0.02) weights themselves are far from 1
    plain = Executor(load_recipe("cyclegan-fashion", TINY), device="cpu").nets["D_A"]
    assert not any(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in plain.modules()
                   if isinstance(m, torch.nn.Conv2d))


def test_adaptive_probability_follows_the_real_scores_sign_by_hand():
    """ADA's rule: every ``interval`` iterations p += sign(r_t − target) · n / (speed_kimg · 1000),
    r_t the mean sign of D's real scores (less ``threshold``), n the real images scored."""
    ada = AdaptiveAugment(["color"], interval=2, speed_kimg=0.01, threshold=0.5)  # 10 images move p by 1
    for _ in range(2):
        ada.observe_real(torch.full((4, 1, 2, 2), 0.9))  # above 0.5: D calls them real, r_t = 1 > 0.6
        ada.after_iteration()
    assert ada.p == pytest.approx(0.8) and ada.last_signal == 1.0
    ada.observe_real(torch.cat([torch.full((3, 1, 2, 2), 0.9), torch.full((1, 1, 2, 2), 0.1)]))
    ada.after_iteration()
    assert ada.p == pytest.approx(0.8)  # not due yet
    ada.observe_real(torch.full((4, 1, 2, 2), 0.1))
    ada.after_iteration()
    assert ada.last_signal == pytest.approx((3 - 1 - 4) / 8) and ada.p == pytest.approx(0.0)  # 0.8 - 0.8
    for _ in range(6):
        ada.observe_real(torch.full((4, 1), 2.0))
        ada.after_iteration()
    assert ada.p == 1.0  # clipped
    state = ada.state_dict()
    again = AdaptiveAugment(["color"])
    again.load_state_dict(state)
    assert again.state_dict() == state


def test_ada_in_training_moves_p_and_is_checkpointed():
    # threshold -10: D calls every real image real (r_t = 1 > 0.6), so p climbs by 4 / 16 per iteration
    recipe = load_recipe("cyclegan-fashion", [*TINY, "networks.D_B.augment={type: ada, args: {interval: 1, "
                                                     "speed_kimg: 0.016, threshold: -10, policy: [translation]}}"])
    ex = Executor(recipe, device="cpu")
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(4, 1, 28, 28, generator=g) * 2 - 1 for k in ("real_A", "real_B")}
    ps = [ex.run_iteration(batch, i)["augment/D_B/p"].item() for i in range(3)]
    assert ps == pytest.approx([0.25, 0.5, 0.75])  # the 4 real images of D_B's term, once per iteration
    state = ex.state_dict()["augments"]["D_B"]
    assert state["p"] == ps[-1] and state["iterations"] == 3
    fresh = Executor(recipe, device="cpu")
    fresh.load_state_dict(ex.state_dict())
    assert fresh.augments["D_B"].state_dict() == state


#: cyclegan-plus: the quality study's recipe it is, and its changes to the reference
PLUS = "hinge-antialias-d"
PLUS_CHANGES = {"networks.D_A.args.antialias", "networks.D_B.args.antialias",
                *(f"steps.generators.losses.{t}.adversarial" for t in ("gan_AB", "gan_BA")),
                *(f"steps.discriminators.losses.{t}.adversarial" for t in ("D_A", "D_B"))}


@pytest.mark.parametrize("task", ["fashion", "edges"])
def test_cyclegan_plus_is_the_measured_recipe_and_the_reference_with_its_changes(task):
    """cyclegan-plus-<task> is the recipe docs/quality.md measured over three seeds, and differs
    from the reference cyclegan-<task> only in what its header lists."""
    plus = load_recipe(f"cyclegan-plus-{task}")
    assert changes(plus, load_recipe(f"quality/{task}-{PLUS}")) == ["name"]
    assert set(changes(load_recipe(f"cyclegan-{task}"), plus)) - {"name"} == PLUS_CHANGES
