"""UNSB's networks (plugins/networks/unsb.py) against the authors' (cyclomon/UNSB at d1f644f).

The numbers were taken from the authors' own code, built on the CPU in a scratch folder outside
this repository: their ``models/ncsn_networks.py`` and ``models/networks.py`` (its StyleGAN import
stubbed), the networks made as ``models/sb_model.py`` makes them, with ``torch.manual_seed(0)`` first:
``define_G(C, C, ngf, 'resnet_9blocks_cond', 'instance', False, 'xavier', 0.02, False, False, [], opt)``
(``opt.n_mlp = 3``), ``define_F(C, 'mlp_sample', ...)`` (``netF_nc = 256``, its MLPs made by a first call
on G's features at layers 0, 4, 8, 12, 16), ``define_D(C, ndf, 'basic_cond', 3, 'instance', 'xavier', 0.02,
...)`` for D and ``define_D(4 * C, ...)`` for E. Settings: "default" C = 3, ngf = ndf = 64 (their
options); "small" C = 1, ngf = ndf = 16. Fingerprint inputs: ``torch.Generator().manual_seed(1)``,
x = 0.5·randn(2, C, S, S), x2 = 0.5·randn(2, 3C, S, S), z = randn(2, 4·ngf); S = 256 and 32.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from unpaired_plugins.losses.patchnce import PatchNCELoss
from unpaired_plugins.networks.init import xavier
from unpaired_plugins.networks.unsb import (
    UNSBDiscriminator,
    UNSBEnergy,
    UNSBGenerator,
    timestep_embedding,
    unpaired_components,
)

from unpaired.errors import DataError
from unpaired.plugin.features import extract_features

NCE_IDS = (0, 4, 8, 12, 16)  # UNSB's --nce_layers


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# (C, ngf = ndf): G, D, E and netF (PatchSampleF's MLPs), as the authors' code counts them
AUTHORS = {"default": ((3, 64), (14_684_419, 3_143_041, 3_152_257, 560_384)),
           "small": ((1, 16), (921_601, 198_497, 199_265, 387_840)),
           "unsb-fashion": ((1, 8), (231_937, 50_353, 50_737, 359_168))}


@pytest.mark.parametrize("setting", AUTHORS)
def test_parameter_counts_equal_the_authors(setting):
    (c, width), expected = AUTHORS[setting]
    g = UNSBGenerator(c, c, ngf=width)
    heads = PatchNCELoss(g, layers=g.layer_names(NCE_IDS), mlp_dim=256)
    assert (count(g), count(UNSBDiscriminator(c, width)), count(UNSBEnergy(c, width)), count(heads)) == expected


def test_shapes_and_ranges():
    g, d, e = UNSBGenerator(1, 2, ngf=4, n_blocks=2, n_mlp=1), UNSBDiscriminator(2, 4), UNSBEnergy(2, 4, n_layers=2)
    x, t, z = torch.randn(3, 1, 32, 24), torch.tensor([0, 2, 4]), torch.randn(3, 16)
    with torch.no_grad():
        y = g(x, t, z)
        assert y.shape == (3, 2, 32, 24) and y.abs().max() <= 1
        assert g(x).shape == y.shape  # t None: step 0, z None: zeros
        assert d(y, t).shape == (3, 1, 2, 1) and d(y, t[:1]).shape == (3, 1, 2, 1)  # (1,): one step for the batch
        pair = torch.cat([y, y], 1)
        assert e(pair, t, pair).shape == (3, 1, 6, 4)
    assert timestep_embedding(torch.tensor([0, 3]), 5).shape == (2, 5)
    assert timestep_embedding(torch.tensor([0]), 8)[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_time_conditioning():
    """D and E depend on t; G, as the authors' (their residual block drops the time embedding),
    does not, but depends on z."""
    torch.manual_seed(0)
    g, d, e = UNSBGenerator(1, 1, ngf=4, n_blocks=2), UNSBDiscriminator(1, 4, n_layers=2), UNSBEnergy(1, 4, n_layers=2)
    x, z, p, q = torch.randn(2, 1, 16, 16), torch.randn(2, 16), torch.randn(2, 2, 16, 16), torch.randn(2, 2, 16, 16)
    t0, t4 = torch.tensor([0, 0]), torch.tensor([4, 4])
    with torch.no_grad():
        assert not torch.allclose(d(x, t0), d(x, t4))
        assert not torch.allclose(e(p, t0, q), e(p, t4, q))
        assert torch.equal(g(x, t0, z), g(x, t4, z))
        assert not torch.allclose(g(x, t0, z), g(x, t0, torch.randn(2, 16)))
    # t's branch of G gets no gradient, as in the authors' code
    g(x, t0, z).sum().backward()
    assert g.model_res[0].Dense_time.weight.grad is None and g.time_embed[0].weight.grad is None
    assert g.model_res[0].adaptive.style_net.weight.grad is not None


def test_feature_reads_match_the_authors_layer_ids():
    torch.manual_seed(0)
    g = UNSBGenerator(1, 1, ngf=4, n_blocks=5)
    assert g.layer_names(NCE_IDS) == ["model.0", "model.4", "model.8", "model_res.0", "model_res.4"]
    x, t, z = torch.randn(2, 1, 16, 16), torch.tensor([0]), torch.randn(2, 16)
    with torch.no_grad():
        feats = g(x, t, z, list(NCE_IDS), encode_only=True)
        hooked = extract_features(g, x, g.layer_names(NCE_IDS), t, z)
        h, feats2 = g(x, t, z, [0, 4], encode_only=False)  # the authors' (trunk output, features)
    assert [tuple(f.shape) for f in feats] == [(2, 1, 22, 22), (2, 8, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4),
                                               (2, 16, 4, 4)]
    assert all(torch.equal(a, b) for a, b in zip(feats, hooked))
    assert h.shape == (2, 16, 4, 4) and len(feats2) == 2 and torch.equal(feats2[1], feats[1])
    with pytest.raises(ValueError, match=r"layer ids are ints in \[0, 17\)"):
        g.layer_names([17])


def test_options_and_errors():
    for norm in ("batch", "none"):
        g = UNSBGenerator(1, 1, ngf=4, n_blocks=1, norm=norm, dropout=True, antialias=False, antialias_up=False)
        assert g.model[1].bias is None  # the authors' rule: a conv bias only with instance norm
        assert g(torch.randn(2, 1, 8, 8), torch.tensor([1, 1]), torch.randn(2, 16)).shape == (2, 1, 8, 8)
        assert UNSBDiscriminator(1, 4, norm=norm).model_main[1].conv1.bias is None
    assert len(UNSBGenerator(1, 1, ngf=4, antialias=False).model) == 10
    g, d, e = UNSBGenerator(1, 1, ngf=4, n_blocks=1), UNSBDiscriminator(1, 4), UNSBEnergy(1, 4)
    x = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match="norm must be one of"):
        UNSBGenerator(norm="group")
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 1, H, W\)"):
        g(torch.randn(1, 3, 16, 16))
    with pytest.raises(DataError, match="divisible by 4"):
        g(torch.randn(1, 1, 18, 16))
    with pytest.raises(ValueError, match=r"time steps must be in \[0, 5\)"):
        g(x, torch.tensor([5]))
    with pytest.raises(ValueError, match="integer indices"):
        d(x, torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"\(N, 4·ngf\) = \(1, 16\); got \(1, 8\)"):
        g(x, torch.tensor([0]), torch.randn(1, 8))
    with pytest.raises(ValueError, match=r"unsb_discriminator: inputs of \(N, 1, H, W\)"):
        d(torch.randn(1, 2, 16, 16), torch.tensor([0]))
    with pytest.raises(ValueError, match="two pairs"):
        e(torch.randn(1, 2, 16, 16), torch.tensor([0]))


def test_registered_components():
    assert [(c.kind, c.name) for c in unpaired_components()] == [
        ("generator", "unsb_generator"), ("discriminator", "unsb_discriminator"), ("discriminator", "unsb_energy")]


# The authors' outputs (see the module docstring): G(x, [3, 3], z), D(x, [1, 4]), E(x ‖ x2, [2, 2]) and
# the sums (float64) of G's features at 0, 4, 8, 12, 16 read at t = 0.
FINGERPRINTS = {
    "small": ((1, 16, 32), dict(
        G_sum=25.092056274414062, G_absmean=0.016016356647014618,
        G_first=[0.014534728601574898, 0.027605220675468445, 0.02401435375213623, 0.03265383467078209],
        D_sum=-0.0008190701482817531,
        D_first=[-6.690816371701658e-05, 8.717684977455065e-05, -0.00016653150669299066, -0.0003825653111562133],
        E_sum=-0.0027096327394247055, E_absmean=0.0003387040924280882,
        feat_sums=[17.680812232516473, -138.96474409620922, 2.0780112880784145, 2360.989742383262,
                   2360.98974266416])),
    "default": ((3, 64, 256), dict(
        G_sum=-1549.8333740234375, G_absmean=0.013241935521364212,
        G_first=[0.01159260980784893, 0.006983114406466484, 0.009237708523869514, 0.007734077516943216],
        D_sum=0.06692720949649811,
        D_first=[0.00016168165893759578, 0.00022798811551183462, -1.4738729078089818e-05, -4.7507131966995075e-05],
        E_sum=-0.13322405517101288, E_absmean=0.00025299101253040135,
        feat_sums=[178.44363204041838, 5389.571616045779, -994.5606644947931, 597164.1546802867,
                   597164.1547129836])),
}


def _fingerprint(setting: str) -> None:
    """Seed 0, then each network built and xavier-initialised (gain 0.02) in the authors' order: the
    same weights as theirs, since the layers are built and registered in their order; then their
    forward passes."""
    (c, width, size), expected = FINGERPRINTS[setting]
    torch.manual_seed(0)
    nets = []
    for make in (lambda: UNSBGenerator(c, c, ngf=width), lambda: UNSBDiscriminator(c, width),
                 lambda: UNSBEnergy(c, width)):
        nets.append(make())
        xavier(nets[-1], 0.02)
    g, d, e = nets
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, c, size, size, generator=gen) * 0.5
    x2 = torch.randn(2, 3 * c, size, size, generator=gen) * 0.5
    z = torch.randn(2, 4 * width, generator=gen)
    with torch.no_grad():
        y, dy = g(x, torch.tensor([3, 3]), z), d(x, torch.tensor([1, 4]))
        both = torch.cat([x, x2], 1)
        ey = e(both[:, :2 * c], torch.tensor([2, 2]), both[:, 2 * c:])
        feats = g(x, torch.tensor([0]), z, list(NCE_IDS), encode_only=True)
    rel = dict(rel=1e-4)
    assert y.sum().item() == pytest.approx(expected["G_sum"], **rel)
    assert y.abs().mean().item() == pytest.approx(expected["G_absmean"], **rel)
    assert y.flatten()[:4].tolist() == pytest.approx(expected["G_first"], **rel)
    assert dy.sum().item() == pytest.approx(expected["D_sum"], rel=1e-4, abs=1e-9)
    assert dy.flatten()[:4].tolist() == pytest.approx(expected["D_first"], rel=1e-4, abs=1e-9)
    assert ey.sum().item() == pytest.approx(expected["E_sum"], rel=1e-4, abs=1e-9)
    assert ey.abs().mean().item() == pytest.approx(expected["E_absmean"], **rel)
    assert [f.double().sum().item() for f in feats] == pytest.approx(expected["feat_sums"], rel=1e-5)


def test_forward_fingerprint_small():
    _fingerprint("small")


@pytest.mark.slow
def test_forward_fingerprint_default():
    _fingerprint("default")
