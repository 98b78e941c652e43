"""UNSB (Kim et al., ICLR 2024) against its authors' code (cyclomon/UNSB at d1f644f): forward
passes, the bridge's ops and losses, an iteration, multi-step translation. The networks' counts,
shapes and options are in tests/test_unsb_networks.py.

Forward passes were measured on the authors' own networks, built in a
scratch folder outside this repository from their ``models/ncsn_networks.py``
(``ResnetGenerator_ncsn(C, C, ngf, instance norm, n_blocks=9, opt.n_mlp=3)``,
``NLayerDiscriminator_ncsn(C, ndf, 3)`` for D and on 4C channels for E) and ``networks.PatchSampleF``
run once on G's features at layers 0, 4, 8, 12, 16 (``encode_only``) to build its MLPs.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unpaired.engine.executor import Executor
from unpaired.errors import RecipeError
from unpaired.inference.translator import Translator
from unpaired.loop.trainer import Trainer
from unpaired.recipe.load import load_recipe
from unpaired.tools.check import check_all
from unpaired_plugins.losses.schrodinger import SBEnergyLoss, SBLoss
from unpaired_plugins.networks.unsb import UNSBDiscriminator, UNSBGenerator
from unpaired_plugins.ops.schrodinger import SBRollout, SBSample, time_grid

NCE_LAYERS = ["model.0", "model.4", "model.8", "model_res.0", "model_res.4"]  # UNSB's 0, 4, 8, 12, 16


def _fill(net: nn.Module) -> None:
    """Every state-dict entry (sorted by name) by one rule, as done to the authors' networks."""
    with torch.no_grad():
        for i, (_, v) in enumerate(sorted(net.state_dict().items())):
            v.copy_((torch.sin(torch.arange(v.numel(), dtype=torch.float64) * 0.37 + i) * 0.05).reshape(v.shape))


def test_forward_passes_equal_the_authors_with_the_same_weights():
    """The values the authors' networks gave with these weights and inputs (1 channel, width 8)."""
    g, d, e = UNSBGenerator(1, 1, ngf=8), UNSBDiscriminator(1, 8), UNSBDiscriminator(4, 8)
    for net in (g, d, e):
        _fill(net)
    x = torch.sin(torch.arange(2 * 32 * 32, dtype=torch.float64) * 0.11).reshape(2, 1, 32, 32).float()
    x2 = torch.cos(torch.arange(2 * 3 * 32 * 32, dtype=torch.float64) * 0.07).reshape(2, 3, 32, 32).float()
    z = torch.cos(torch.arange(2 * 32, dtype=torch.float64) * 0.23).reshape(2, 32).float()
    with torch.no_grad():
        y, dy, ey = g(x, torch.tensor([3, 3]), z), d(x, torch.tensor([1, 4])), e(x, torch.tensor([2, 2]), x2)
    # float32 rounding: this machine's kernels put the generator's outputs up to 8e-6 from the same
    # network in float64, so element values are compared to 1e-5 (they are 0.02-0.04 here)
    close = dict(rel=1e-5, abs=1e-5)
    assert (y.sum().item(), y.abs().sum().item()) == (pytest.approx(-58.265655517578125, **close),
                                                      pytest.approx(383.84124755859375, **close))
    assert y.flatten()[:4].tolist() == pytest.approx([-0.0190792214, -0.0344494618, -0.0436741933, -0.0375235081],
                                                     **close)
    assert dy.shape == (2, 1, 2, 2) and dy.sum().item() == pytest.approx(1.4946918487548828, **close)
    assert dy.flatten()[:4].tolist() == pytest.approx([0.176056385, 0.2541815341, 0.2639295459, 0.1908301711], **close)
    assert (ey.sum().item(), ey.abs().sum().item()) == (pytest.approx(1.6050491333007812, **close),
                                                        pytest.approx(1.720953345298767, **close))


def test_time_grid_by_hand():
    # incs 0, 1, 1/2, 1/3, 1/4 -> cumsum / 25/12 -> 0.5 + 0.5 x, then 0 in front
    cum = [0, 1, 1.5, 1.5 + 1 / 3, 1.5 + 1 / 3 + 0.25]
    expected = [0.0] + [0.5 + 0.5 * c / cum[-1] for c in cum]
    assert time_grid(5).tolist() == pytest.approx(expected)
    assert time_grid(5).tolist()[:3] == pytest.approx([0.0, 0.5, 0.74])


class Constant(nn.Module):
    """A 'generator' predicting the constant c whatever its inputs; records its time steps."""

    def __init__(self, c: float):
        super().__init__()
        self.c, self.calls = c, []

    def forward(self, x, t, z):
        self.calls.append(t.tolist())
        return torch.full_like(x, self.c)


def test_rollout_by_hand_without_noise():
    times = time_grid(5).tolist()
    op, g = SBRollout(num_timesteps=5, tau=0.0, z_dim=4), Constant(1.0)
    x0 = torch.tensor([0.2, -0.4, 0.0]).reshape(3, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    out = op(x0, torch.tensor([0, 1, 2]), {"G": g}, gen)
    # x_s = (1 - a_s) x_{s-1} + a_s * 1,  a_s = (t_s - t_{s-1}) / (t_5 - t_{s-1})
    a1, a2 = (times[1] - times[0]) / (times[5] - times[0]), (times[2] - times[1]) / (times[5] - times[1])
    x1 = [(1 - a1) * v + a1 for v in (0.2, -0.4, 0.0)]
    x2 = (1 - a2) * x1[2] + a2
    assert out.flatten().tolist() == pytest.approx([0.2, x1[1], x2])  # each sample stops at its own t
    assert g.calls == [[0, 0, 0], [1, 1, 1]]  # G at steps 0 and 1; none at the last step
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        op(x0, torch.tensor([5, 0, 0]), {"G": g}, gen)


def test_rollout_noise_has_the_bridge_variance():
    op, g = SBRollout(num_timesteps=5, tau=0.5, z_dim=4), Constant(0.0)
    x = op(torch.zeros(4000, 1, 1, 1), torch.ones(4000, dtype=torch.long), {"G": g}, torch.Generator().manual_seed(1))
    t = time_grid(5).tolist()
    delta, denom = t[1] - t[0], t[5] - t[0]
    assert x.var().item() == pytest.approx(0.5 * delta * (1 - delta / denom), rel=0.08)


def test_sample_takes_1_to_T_steps():
    times = time_grid(5).tolist()
    g = Constant(1.0)
    op = SBSample(steps=1, num_timesteps=5, tau=0.0, z_dim=4)
    x0 = torch.full((1, 1, 2, 2), -1.0)
    assert torch.equal(op(x0, {"G": g}, torch.Generator()), torch.ones_like(x0)) and g.calls == [[0]]
    op.steps, g.calls = 3, []
    op(x0, {"G": g}, torch.Generator())
    assert g.calls == [[0], [1], [2]]  # NFE 3: UNSB's fake_3
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match="from 1 to num_timesteps=5"):
            op.steps = bad
    assert times[-1] == 1.0


class Bilinear(nn.Module):
    """A tiny 'energy network': E(p, t, q) = mean over channels of p * q, one map per image."""

    def forward(self, p, t, q):
        return (p * q).mean(1, keepdim=True) + 0.1 * t.float().reshape(-1, 1, 1, 1)


def test_sb_losses_by_hand():
    g = torch.Generator().manual_seed(0)
    x_t, x_1, x2_t, x2_1 = (torch.rand(2, 1, 2, 2, generator=g) for _ in range(4))
    t = torch.tensor([3, 3])
    images = {"fake_B2": x2_1, "x_t2": x2_t, "t": t}
    p, q = torch.cat([x_t, x_1], 1), torch.cat([x2_t, x2_1], 1)
    same = (p * p).mean(1) + 0.3
    other = (p * q).mean(1) + 0.3
    lse = math.log(sum(math.exp(v) for v in other.flatten().tolist()))
    energy = SBEnergyLoss()(x_1, x_t, {"E": Bilinear()}, images)
    assert energy.item() == pytest.approx(-same.mean().item() + lse + lse ** 2, rel=1e-6)
    sb = SBLoss(tau=0.01, num_timesteps=5)(x_1, x_t, {"E": Bilinear()}, images)
    hand = -(5 - 3) / 5 * 0.01 * (same.mean().item() - lse) + 0.01 * ((x_t - x_1) ** 2).mean().item()
    assert sb.item() == pytest.approx(hand, rel=1e-6)
    # E's loss sees the translations detached (the authors' fake_B.detach()); G's loss does not
    x_1.requires_grad_(True)
    assert not SBEnergyLoss()(x_1, x_t, {"E": Bilinear()}, images).requires_grad
    assert SBLoss()(x_1, x_t, {"E": Bilinear()}, images).requires_grad
    with pytest.raises(ValueError, match="x_t2"):
        SBLoss()(x_1, x_t, {"E": Bilinear()}, {"fake_B2": x2_1, "t": t})


TINY = ["data.args.limit=8", "data.batch_size=2", "networks.G.args.ngf=8", "networks.G.args.n_blocks=5",
        "networks.D.args.ndf=8", "networks.E.args.ndf=8", "images.z.shape=[32]", "images.z2.shape=[32]",
        "images.zB.shape=[32]", "images.z_nce.shape=[32]", "images.z_1.shape=[32]", "images.x_t.args.z_dim=32", "images.x_t2.args.z_dim=32",
        "images.xB_t.args.z_dim=32", "images.sample_B.args.z_dim=32", "steps.generator.losses.nce.args.num_patches=16",
        "steps.generator.losses.nce.args.mlp_dim=16", "device=cpu"]


@pytest.mark.parametrize("t, rollout", [(0, 0), (4, 4)])
def test_one_iteration_makes_the_authors_generator_passes(t, rollout):
    """Per iteration: the roll-outs of real_A, real_A2 and real_B to step t (t passes each), the graded
    passes G(x_t), G(x_t2), G(xB_t), once (kept for G's step), and PatchNCE's four encoder passes."""
    recipe = load_recipe("unsb-fashion", [*TINY, f"images.t.low={t}", f"images.t.high={t + 1}"])
    assert check_all(recipe) == []
    ex = Executor(recipe, device="cpu")
    calls = []
    ex.nets["G"].register_forward_pre_hook(lambda mod, args: calls.append(1))
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 1, 28, 28, generator=g) * 2 - 1 for k in ("real_A", "real_B", "real_A2", "real_B2")}
    values = ex.run_iteration(batch)
    assert set(values) >= {"discriminator/D", "energy/E", "generator/gan", "generator/sb", "generator/nce",
                           "generator/nce_idt"} and all(math.isfinite(v.item()) for v in values.values())
    assert len(calls) == 3 * rollout + 3 + 4


@pytest.mark.slow
def test_translate_with_1_to_5_steps(tmp_path):
    Trainer(load_recipe("unsb-fashion", [*TINY, "train.max_iterations=2", "train.eval_every=null",
                                         f"out_dir={tmp_path}"])).fit()
    tr = Translator(tmp_path, "AtoB", device="cpu")
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    outs = []
    for k in range(1, 6):
        tr.set_steps(k)
        outs.append(tr(x))
        assert outs[-1].shape == x.shape and outs[-1].abs().max() <= 1
    assert all(not torch.equal(a, b) for a, b in zip(outs, outs[1:]))
    tr.set_steps(2)
    assert torch.equal(tr(x), outs[1])  # one seed, the same sample
    with pytest.raises(RecipeError, match="from 1 to num_timesteps=5"):
        tr.set_steps(6)
    # a translator over a run's networks in memory (evaluation's) keeps its own sampler
    shared = Translator.from_networks(tr.recipe, tr.nets, "AtoB", "cpu")
    shared.set_steps(1)
    assert tr.recipe.graph.ops["sample_B"].steps == 5 and tr.graph.ops["sample_B"].steps == 2


@pytest.mark.slow
def test_cli_translate_steps(tmp_path, capsys):
    from conftest import write_images

    from unpaired.cli import main

    run = tmp_path / "run"
    Trainer(load_recipe("unsb-fashion", [*TINY, "train.max_iterations=1", "train.eval_every=null",
                                         f"out_dir={run}"])).fit()
    write_images(tmp_path / "in", 2, channels=1, size=28)
    assert main(["translate", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--steps", "2", "--device", "cpu"]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    assert main(["translate", str(run), "--input", str(tmp_path / "in"), "--steps", "9", "--device", "cpu"]) == 2
    assert "--steps: steps (NFE) must be an integer from 1 to num_timesteps=5, got 9" in capsys.readouterr().err
    assert main(["translate", str(run), "--direction", "AtoB_nfe1", "--input", str(tmp_path / "in"), "--steps", "2",
                 "--device", "cpu"]) == 2
    assert "has no multi-step sampler" in capsys.readouterr().err
    # export: the sampler's loop cannot go into a file; the one-step generator, its noise fixed, can
    assert main(["export", str(run), "--direction", "AtoB", "--format", "torchscript"]) == 2
    assert "AtoB_nfe1" in capsys.readouterr().err
    assert main(["export", str(run), "--direction", "AtoB_nfe1", "--format", "torchscript",
                 "--out", str(tmp_path / "g.pt")]) == 0
    exported = torch.jit.load(str(tmp_path / "g.pt"))
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.allclose(exported(x), Translator(run, "AtoB_nfe1", device="cpu", scale="native")(x), atol=1e-4)
