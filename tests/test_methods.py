"""FastCUT, DCLGAN and SimDCL against their authors' code.

Parameter counts were taken from the authors' own code (JunlinHan/DCLGAN at abb805c, whose
``models/networks.py`` is CUT's with MappingF added), built in a scratch folder outside this
repository: ``networks.define_G(3, 3, 64, 'resnet_9blocks', 'instance', False, 'xavier', 0.02, ...)``,
``define_D(3, 64, 'basic', 3, 'instance', ...)``, ``define_F(3, 'mlp_sample', ...)`` run once on the
generator's features at layers 4, 8, 12, 16 of a 256-pixel input (its MLPs are built then), and
``define_F(4, 'mapping', ...)``; and the same at 1 channel, ngf = ndf = 8, resnet_6blocks, 32 pixels.
All with ``--no_antialias --no_antialias_up``: the plain strided generator our recipes build
(cut.yaml says why). With the anti-aliased default the layer indices name other modules: at
6 blocks layer 16 is then a residual block (32 channels) and the small head set has 292,864.
"""

from __future__ import annotations

from collections import Counter

import math

import pytest
import torch
from torch import nn

from unpaired.engine.executor import Executor
from unpaired.recipe.graph import ImageGraph
from unpaired.recipe.load import load_recipe
from unpaired.tools.check import check_all
from unpaired_plugins.losses.adversarial import HingeGANLoss
from unpaired_plugins.losses.dcl import DualPatchNCELoss, MappingF
from unpaired_plugins.losses.patchnce import PatchNCELoss, l2_normalize, patch_nce
from unpaired_plugins.networks.patchgan import NLayerDiscriminator
from unpaired_plugins.networks.resnet import ResnetGenerator

LAYERS = [4, 8, 12, 16]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# (in/out channels, ngf = ndf, residual blocks): G, D, one head set (F1 or F2), as the authors' code counts them
AUTHORS = {"default": ((3, 64, 9), (11_378_179, 2_764_737, 493_568)),
           "small": ((1, 8, 6), (123_361, 44_281, 288_768))}


@pytest.mark.parametrize("setting", AUTHORS)
def test_dclgan_parameter_counts_equal_the_authors(setting):
    (channels, width, blocks), (g, d, heads) = AUTHORS[setting]
    g_a, g_b = (ResnetGenerator(channels, channels, ngf=width, n_blocks=blocks) for _ in range(2))
    disc = NLayerDiscriminator(channels, ndf=width, n_layers=3)
    loss = DualPatchNCELoss({"G_A": g_a, "G_B": g_b}, layers=LAYERS)
    assert (count(g_a), count(disc), count(loss.f1), count(loss.f2)) == (g, d, heads, heads)
    # SimDCL: four MappingF(4) of 10,688 parameters each (the authors' count)
    sim = DualPatchNCELoss({"G_A": g_a, "G_B": g_b}, layers=LAYERS, similarity=5.0)
    assert count(MappingF(4)) == 10_688 and count(sim) == 2 * heads + 4 * 10_688


def test_with_the_anti_aliased_default_the_layers_name_the_authors_modules():
    """The authors' anti-aliased default (small setting): layer 16 is a residual block, heads 292,864."""
    g_a, g_b = (ResnetGenerator(1, 1, ngf=8, n_blocks=6, antialias=True, antialias_up=True) for _ in range(2))
    loss = DualPatchNCELoss({"G_A": g_a, "G_B": g_b}, layers=LAYERS)
    assert type(g_a.model[16]).__name__ == "ResnetBlock" and count(loss.f1) == 292_864


@pytest.fixture
def generators():
    torch.manual_seed(0)
    return {"G_A": ResnetGenerator(1, 1, ngf=4, n_blocks=1), "G_B": ResnetGenerator(1, 1, ngf=4, n_blocks=1)}


def _embed(net, heads, x, layer_ids, ids=None, num=8):
    """By hand: features at ``layer_ids`` by slicing the generator's model, sampled, through the heads."""
    out, used = [], []
    for i, layer in enumerate(layer_ids):
        f = net.model[: layer + 1](x)
        flat = f.permute(0, 2, 3, 1).flatten(1, 2)
        pid = torch.randperm(flat.shape[1])[:num] if ids is None else ids[i]
        out.append(l2_normalize(heads[i](flat[:, pid].flatten(0, 1))))
        used.append(pid)
    return out, used


def _dual_embeddings(loss, g_a, g_b, real_a, real_b, fake_b, fake_a):
    """DCLGAN's calculate_NCE_loss1/2 by hand: keys by the source domain's generator and its head,
    sampled first; queries by the other generator and the other head at the same positions.
    Returns (keys_A, ids_A), (keys_B, ids_B), queries of fake_B, queries of fake_A."""
    k1, ids1 = _embed(g_a, loss.f1, real_a, [1, 4])
    k2, ids2 = _embed(g_b, loss.f2, real_b, [1, 4])
    q1, _ = _embed(g_b, loss.f2, fake_b, [1, 4], ids1)
    q2, _ = _embed(g_a, loss.f1, fake_a, [1, 4], ids2)
    return (k1, ids1), (k2, ids2), q1, q2


def test_dual_patchnce_crosses_encoders_and_heads_as_dclgan(generators):
    loss = DualPatchNCELoss(generators, layers=[1, 4], num_patches=8, mlp_dim=8)
    g_a, g_b = generators.values()
    real_a, real_b = torch.rand(2, 1, 12, 12) * 2 - 1, torch.rand(2, 1, 12, 12) * 2 - 1
    fake_b, fake_a = g_a(real_a), g_b(real_b)
    torch.manual_seed(1)
    got = loss(fake_b, real_a, generators, {"fake_A": fake_a, "real_B": real_b})
    torch.manual_seed(1)
    (k1, ids1), (k2, _), q1, q2 = _dual_embeddings(loss, g_a, g_b, real_a, real_b, fake_b, fake_a)
    nce1 = sum(patch_nce(q, k, 0.07, 2).mean() for q, k in zip(q1, k1)) / 2
    nce2 = sum(patch_nce(q, k, 0.07, 2).mean() for q, k in zip(q2, k2)) / 2
    assert got.item() == pytest.approx(((nce1 + nce2) / 2).item(), rel=1e-6)
    # with the heads swapped (CUT's single encoder and head per direction) the value differs
    swapped = sum(patch_nce(_embed(g_a, loss.f1, fake_b, [1, 4], ids1)[0][i], k1[i], 0.07, 2).mean()
                  for i in range(2)) / 2
    assert abs(swapped.item() - nce1.item()) > 1e-3


def test_simdcl_similarity_by_hand(generators):
    loss = DualPatchNCELoss(generators, layers=[1, 4], num_patches=8, mlp_dim=8, similarity=5.0)
    g_a, g_b = generators.values()
    real_a, real_b = torch.rand(1, 1, 12, 12) * 2 - 1, torch.rand(1, 1, 12, 12) * 2 - 1
    fake_b, fake_a = g_a(real_a), g_b(real_b)
    torch.manual_seed(2)
    got = loss(fake_b, real_a, generators, {"fake_A": fake_a, "real_B": real_b})
    torch.manual_seed(2)
    (k1, ids1), (k2, _), q1, q2 = _dual_embeddings(loss, g_a, g_b, real_a, real_b, fake_b, fake_a)
    free_b, _ = _embed(g_b, loss.f2, fake_b, [1, 4])  # the fakes' samples at fresh positions
    free_a, _ = _embed(g_a, loss.f1, fake_a, [1, 4])
    nce = (sum(patch_nce(q, k, 0.07, 1).mean() for q, k in zip(q1 + q2, k1 + k2)) / 2) / 2
    f3, f4, f5, f6 = loss.mapping

    def code(samples, mapping):  # MappingF: x.view(1, layers, patches, features)
        return mapping(torch.stack(samples).view(1, len(samples), 8, 8))

    sim = ((code(k1, f3) - code(free_a, f6)).abs().mean() + (code(free_b, f4) - code(k2, f5)).abs().mean())
    assert got.item() == pytest.approx((nce + 5.0 * sim).item(), rel=1e-5)
    # the real images' embeddings keep their gradients: the similarity loss trains G_A through real_A
    g_a.zero_grad()
    loss(fake_b.detach(), real_a, generators, {"fake_A": fake_a.detach(), "real_B": real_b}).backward()
    assert g_a.model[1].weight.grad is not None and g_a.model[1].weight.grad.abs().sum() > 0


def test_the_authors_similarity_criterion_is_a_mean():
    # simdcl_model.py builds torch.nn.L1Loss('sum'): 'sum' lands in the legacy size_average
    # argument, which makes the reduction a mean, not a sum; ours is the mean, as theirs runs
    a, b = torch.tensor([[0.5, -0.5, 1.0]]), torch.zeros(1, 3)
    with pytest.warns(UserWarning):
        theirs = nn.L1Loss("sum")(a, b)
    assert theirs.item() == pytest.approx(2.0 / 3)


def test_mapping_network_is_the_authors_layer_stack():
    m = MappingF(4)
    kinds = [type(layer).__name__ for layer in m.model]
    assert kinds == ["Conv2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Linear", "ReLU", "Linear"]
    assert m.model[0].stride == (2, 2) and m.model[0].kernel_size == (3, 3)
    out = m(torch.randn(3, 4, 16, 16))
    assert out.shape == (3, 64) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_dual_patchnce_bad_arguments(generators):
    with pytest.raises(ValueError, match="two generators"):
        DualPatchNCELoss({"G_A": generators["G_A"]})
    loss = DualPatchNCELoss(generators, layers=[1, 4], num_patches=8, mlp_dim=8)
    x = torch.zeros(1, 1, 12, 12)
    with pytest.raises(ValueError, match="fake_A, real_B"):
        loss(x, x, generators, {})
    with pytest.raises(ValueError, match="num_patches=200"):
        sim = DualPatchNCELoss(generators, layers=[1, 4], num_patches=200, mlp_dim=8, similarity=1.0)
        sim(x, x, generators, {"fake_A": x, "real_B": x})


def test_hinge_generator_side_as_dclgan():
    pred = torch.tensor([0.5, 2.0, -1.0])
    hinge = HingeGANLoss(generator_side="hinge")
    # DCLGAN's GANLoss('hinge')(pred, True) for G: -mean(min(pred - 1, 0)) = mean(relu(1 - pred))
    assert hinge.criterion(pred, True, for_discriminator=False).item() == pytest.approx((0.5 + 0 + 2.0) / 3)
    assert HingeGANLoss().criterion(pred, True, for_discriminator=False).item() == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="generator_side"):
        HingeGANLoss(generator_side="softplus")


# -- FastCUT -----------------------------------------------------------------------------------------
def test_hflip_node_mirrors_the_samples_its_coin_marks():
    graph = ImageGraph({"flip": {"random": "integer", "high": 2}, "a": {"hflip": "real_A", "where": "flip"},
                        "all": {"hflip": "real_A"}})
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    out = graph.compute(["a", "all"], {}, {"real_A": x, "flip": torch.tensor([1, 0])})
    assert torch.equal(out["a"][0], x[0].flip(-1)) and torch.equal(out["a"][1], x[1])
    assert torch.equal(out["all"], x.flip(-1))
    assert graph.nodes["a"].describe() == "hflip(real_A) where flip"


class Pointwise(nn.Module):
    """1x1 convolutions only: exactly equivariant to mirroring."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.Tanh(), nn.Conv2d(4, 1, 1))

    def forward(self, x):
        return self.model(x)


def test_flip_equivariance_mirrors_the_queries_back():
    torch.manual_seed(0)
    net = Pointwise()
    loss = PatchNCELoss(net, layers=[0, 2], num_patches=8, mlp_dim=8, flipped="flip")
    a = torch.rand(2, 1, 6, 6) * 2 - 1
    y = net(a)
    coin = torch.tensor([1, 1])

    def value(input, flips):
        torch.manual_seed(3)
        return loss(input, a, net, {"flip": flips}).item()

    # G(flip(a)) = flip(G(a)) for this G: mirrored back, its queries are those of G(a)
    assert value(y.flip(-1), coin) == pytest.approx(value(y, torch.zeros(2, dtype=torch.long)), rel=1e-6)
    assert abs(value(y.flip(-1), torch.zeros(2, dtype=torch.long)) - value(y, coin * 0)) > 1e-3
    with pytest.raises(ValueError, match="flip \\(flipped"):
        loss(y, a, net, {})


def test_fastcut_recipe_is_cut_with_fastcuts_defaults():
    for name in ("fastcut-fashion", "fastcut"):
        recipe = load_recipe(name, ["data.args.root=/nowhere"] if name == "fastcut" else [])
        losses = recipe.steps.generator.losses
        assert set(losses) == {"gan", "nce"} and losses.nce.weight == 10.0 and losses.nce.args.flipped == "flip"
        assert recipe.images.fake_B.input == "real_A_flip" and "idt_B" not in recipe.images
    full = load_recipe("fastcut", ["data.args.root=/nowhere"]).train.scheduler.args
    assert (full.n_epochs, full.n_epochs_decay) == (150, 50)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", ["fastcut-fashion", "dclgan-fashion", "simdcl-fashion"])
def test_method_recipes_check_and_run_an_iteration(name, precision, tmp_path):
    """bf16 too (every recipe's precision is auto): DCLGAN's encoders ran with autocast off on the
    step's bf16 images and raised a dtype error."""
    recipe = load_recipe(name, ["data.args.limit=8", "data.batch_size=2", "device=cpu", f"out_dir={tmp_path}",
                                f"train.precision={precision}"])
    assert check_all(recipe) == []
    ex = Executor(recipe, device="cpu")
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 1, 28, 28, generator=g) * 2 - 1 for k in ("real_A", "real_B")}
    values = ex.run_iteration(batch)
    assert all(math.isfinite(v.item()) for v in values.values())
    if name.startswith("fastcut"):
        assert set(values) >= {"generator/gan", "generator/nce"} and "generator/nce_idt" not in values
    else:
        assert {"generators/nce/nce1", "generators/nce/nce2"} <= set(values)
        assert ("generators/nce/sim" in values) == name.startswith("simdcl")


# Per iteration, as the authors' optimize_parameters makes them, per network: (full passes,
# encoder-only passes). DCLGAN (dcl_model.py): forward() makes fake_B = G_A(real_A), idt_A =
# G_A(real_B) and the mirror ones with G_B; NCE1 encodes real_A with G_A and fake_B with G_B, NCE2
# real_B with G_B and fake_A with G_A; each D judges its fake in G's step, its real and pooled fake
# in its own. FastCUT (cut_model.py, nce_idt False): G(real_A) once, NCE encodes real_A and fake_B;
# D judges fake_B in G's step, real_B and fake_B in its own.
PASSES = {
    "dclgan-fashion": {"G_A": (2, 2), "G_B": (2, 2), "D_A": (3, 0), "D_B": (3, 0)},
    "simdcl-fashion": {"G_A": (2, 2), "G_B": (2, 2), "D_A": (3, 0), "D_B": (3, 0)},
    "fastcut-fashion": {"G": (1, 2), "D": (3, 0)},
}


@pytest.mark.parametrize("name", PASSES)
def test_an_iteration_makes_the_authors_passes(name):
    ex = Executor(load_recipe(name, ["device=cpu"]), device="cpu")
    started, finished = Counter(), Counter()  # an encoder-only pass starts and stops early (no post hook)
    for net_name, net in ex.nets.items():
        net.register_forward_pre_hook(lambda mod, args, n=net_name: started.update({n: len(args[0]) // 2}))
        net.register_forward_hook(lambda mod, args, out, n=net_name: finished.update({n: len(args[0]) // 2}))
    g = torch.Generator().manual_seed(0)
    ex.run_iteration({k: torch.rand(2, 1, 28, 28, generator=g) * 2 - 1 for k in ("real_A", "real_B")})
    assert {n: (finished[n], started[n] - finished[n]) for n in ex.nets} == PASSES[name]


@pytest.mark.parametrize("method", ["cut", "fastcut", "dclgan", "simdcl", "unsb", "uvcgan2"])
def test_edges_variants_are_the_methods_on_the_edges_task(method):
    """Each <method>-edges recipe trains its -fashion recipe's networks and losses on the edges <->
    photos task, judged against the true pairs (cyclegan-edges' judge; one-way methods AtoB only)."""
    edges, fashion = load_recipe(f"{method}-edges", ["init_from=null"]), load_recipe(f"{method}-fashion")
    assert check_all(edges) == []
    assert edges.networks == fashion.networks and edges.steps == fashion.steps
    assert edges.data.dataset == "fashion_edges" and edges.eval.best == "AtoB/paired_l1"
    both = "BtoA" in edges.inference
    assert set(edges.eval.metrics) == {"paired", "content", "fid", "diversity", *(("edges",) if both else ()),
                                       *(("cycle",) if "rec_A" in edges.images else ())}


def test_dclgan_heads_have_their_own_adam():
    ex = Executor(load_recipe("dclgan-fashion", ["device=cpu"]), device="cpu")
    groups = ex.optimizers["generators"].param_groups
    heads = {id(p) for p in ex.losses["generators", "nce"].parameters()}
    assert [g["lr"] for g in groups] == [0.0002, 0.001] and tuple(groups[1]["betas"]) == (0.9, 0.999)
    assert {id(p) for p in groups[1]["params"]} == heads and not heads & {id(p) for p in groups[0]["params"]}


@pytest.mark.parametrize("override, key, code", [
    ("steps.generators.optimizer.groups.nce.lrr=0.1", "steps.generators.optimizer.groups.nce.lrr", "unknown-argument"),
    ("steps.generators.optimizer.groups.nce.lr=-1", "steps.generators.optimizer.groups.nce.lr", "not-positive"),
    ("steps.generators.optimizer.groups.nec.lr=0.1", "steps.generators.optimizer.groups.nec", "unknown-network"),
])
def test_parameter_groups_are_checked(override, key, code):
    problems = check_all(load_recipe("dclgan-fashion", [override]))
    assert [(p.key, p.code) for p in problems] == [(key, code)]


def test_a_group_on_a_shared_head_holds_it_once():
    # CUT's nce_idt shares nce's head: grouping nce puts the head in its group only
    ex = Executor(load_recipe("cut-fashion", ["device=cpu", "steps.generator.optimizer.groups.nce.lr=0.001"]),
                  device="cpu")
    groups = ex.optimizers["generator"].param_groups
    head = {id(p) for p in ex.losses["generator", "nce"].parameters()}
    assert [g["lr"] for g in groups] == [0.0002, 0.001] and {id(p) for p in groups[1]["params"]} == head
    assert not head & {id(p) for p in groups[0]["params"]}
