"""UVCGAN v2's networks (Torbunov et al., 2023) against the authors' code (LS4GAN/uvcgan2 at 871b2b9).

The counts and fingerprints were taken from the authors' own networks, built in a scratch folder
outside this repository from their code as their trainer builds them: ``construct_generator`` with
``GEN_PRESETS['uvcgan2']`` (``uvcgan2/presets.py``) at input/output shape (3, 256, 256), and
``BatchHeadWrapper(construct_discriminator(basic, shrink_output=False, spectr_norm=True),
get_batch_head({'name': 'batch-norm-2d' (AFHQ) or 'batch-stdev' (CelebA-HQ), 'input_features': 512,
'output_features': 1, 'activ': 'leakyrelu'}))``, weight_init normal 0.02, the configuration of
``scripts/afhq/train_cat2dog_translation.py`` (``scripts/celeba_hq/train_m2f_translation.py``);
and a small one: the same preset with features 32, n_heads 2, n_blocks 2, ffn_features 64,
embed_features 16, modnet_features_list [8, 16, 32], shape (1, 32, 32); D with ndf 8, head input 64.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from unpaired_plugins.networks.uvcgan2 import (
    UVCGAN2Discriminator,
    UVCGAN2Generator,
    unpaired_components,
)

SMALL_G = dict(in_channels=1, image_size=32, features=32, n_heads=2, n_blocks=2, ffn_features=64, embed_features=16,
               modnet_features_list=[8, 16, 32])
SMALL_D = dict(in_channels=1, image_size=32, ndf=8)


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# setting: (our G args, our D args), (G, D parameter counts as the authors' code counts them)
AUTHORS = {
    "afhq": (({}, {}), (32_192_231, 5_121_985)),
    "celeba_hq": (({}, {"head": "batch-stdev"}), (32_192_231, 5_125_569)),
    "small": ((SMALL_G, SMALL_D), (92_177, 80_889)),
}


@pytest.mark.parametrize("setting", AUTHORS)
def test_parameter_counts_equal_the_authors(setting):
    (g_args, d_args), expected = AUTHORS[setting]
    assert (count(UVCGAN2Generator(**g_args, init_gain=None)), count(UVCGAN2Discriminator(**d_args, init_gain=None))) \
        == expected


def test_registered_components():
    names = {(c.kind, c.name) for c in unpaired_components()}
    assert names == {("generator", "uvcgan2_generator"), ("discriminator", "uvcgan2_discriminator")}


def test_shapes_ranges_and_the_style_from_the_bottleneck():
    g, d = UVCGAN2Generator(**SMALL_G), UVCGAN2Discriminator(**SMALL_D)
    x = torch.randn(3, 1, 32, 32)
    y = g(x)
    assert y.shape == x.shape and 0 < y.min() and y.max() < 1  # the authors' sigmoid: [0, 1] images
    assert UVCGAN2Generator(**SMALL_G, activ_output="tanh")(x).abs().max() < 1
    assert d(x).shape == (3, 1, 3, 3)
    # the AFHQ sizes: a 384 x 16 x 16 bottleneck, 31 x 31 patch logits, queues of 3 x 512 x 31 x 31
    big_d = UVCGAN2Discriminator(init_gain=None)
    assert big_d._body.output_size(256, 256) == (31, 31) and big_d.queue_real.shape == (3, 512, 31, 31)
    # the style: the extra token's output (N, n_ext * features); it modulates the decoder once the gates open
    vit = g.net.levels[-1].inner_module
    pixels, mod = vit(torch.randn(3, 32, 4, 4))
    assert pixels.shape == (3, 32, 4, 4) and mod.shape == (3, 32)
    g = UVCGAN2Generator(**SMALL_G, init_gain=None)  # PyTorch's initialisation: a livelier signal
    vit = g.net.levels[-1].inner_module
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("re_alpha"):  # the ReZero gates, 0 at the start
                p.fill_(0.5)
        before = g(x)
        vit.extra_tokens.add_(1.0)
        assert not torch.allclose(before, g(x))


def test_errors():
    g = UVCGAN2Generator(**SMALL_G)
    with pytest.raises(ValueError, match="built for 32x32"):
        g(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="channel|shape"):
        g(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 8"):
        UVCGAN2Generator(**{**SMALL_G, "image_size": 36})
    with pytest.raises(ValueError, match="head"):
        UVCGAN2Discriminator(**SMALL_D, head="minibatch")
    d = UVCGAN2Discriminator(**SMALL_D)
    with pytest.raises(ValueError, match="queue"):
        d(torch.randn(1, 1, 32, 32), queue="old")
    with pytest.raises(ValueError, match="update_queue"):
        d(torch.randn(1, 1, 32, 32), update_queue=True)
    d(torch.randn(1, 1, 32, 32), queue="real", update_queue=True)
    with pytest.raises(ValueError, match="image_size"):
        d(torch.randn(1, 1, 64, 64), queue="real")
    with pytest.raises(ValueError, match="image_size"):
        d.push("fake", torch.randn(1, 64, 7, 7))


def test_the_queue():
    torch.manual_seed(0)
    # without spectral norm, whose power iteration changes the body at every training-mode pass
    d = UVCGAN2Discriminator(**SMALL_D, spectr_norm=False).train()
    xs = [torch.randn(2, 1, 32, 32) for _ in range(3)]
    assert d.query("real") is None and d.query("fake") is None
    # reading (the generator's step) pushes nothing; and the queue starts empty, so it is D(x)
    assert torch.allclose(d(xs[0], queue="fake"), d(xs[0])) and d.query("fake") is None
    with torch.no_grad():
        bodies = [d._body(x) for x in xs]
        d(xs[0], queue="real", update_queue=True)  # sees no queue, then pushes its 2 samples
        assert torch.equal(d.query("real"), bodies[0]) and d.query("fake") is None
        # the head sees this batch and the queue; only this batch's rows come back
        out = d(xs[1], queue="real", update_queue=True)
        assert torch.allclose(out, d._head(torch.cat([bodies[1], bodies[0]]))[:2], atol=1e-6)
        assert not torch.allclose(out, d(xs[1]), atol=1e-4)  # batch statistics over 4 samples, not 2
    # a ring of 3 samples: 2 + 2 overwrote the oldest; slot order [b1[1], b0[1], b1[0]]
    assert int(d.queue_real_count) == 3 and int(d.queue_real_next) == 1
    assert torch.equal(d.query("real"), torch.stack([bodies[1][1], bodies[0][1], bodies[1][0]]))
    d.push("real", torch.cat([bodies[2], bodies[0]]))  # more than 3 rows: only the last 3 stay
    assert torch.equal(d.query("real")[[1, 2, 0]], torch.cat([bodies[2][1:], bodies[0]]))
    # extra_bodies replaces the queue (the gradient penalty's mix of the real and fake queues)
    mix = 0.3 * d.query("real")
    with torch.no_grad():
        assert torch.allclose(d(xs[0], queue="real", extra_bodies=mix), d._head(torch.cat([bodies[0], mix]))[:2],
                              atol=1e-6)
    # saved in the state dict; a state dict without the queues (the authors') loads, queues empty
    state = d.state_dict()
    assert {"queue_real", "queue_real_count", "queue_real_next", "queue_fake"} <= set(state)
    e = UVCGAN2Discriminator(**SMALL_D, spectr_norm=False)
    e.load_state_dict(state)
    assert torch.equal(e.query("real"), d.query("real"))
    e.load_state_dict({k: v for k, v in state.items() if not k.startswith("queue_")})
    assert e.query("real") is None and e.query("fake") is None


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    d = UVCGAN2Discriminator(**SMALL_D).train()
    convs = [m for m in d._body.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(hasattr(m.parametrizations, "weight") for m in convs)
    assert not any(hasattr(m, "parametrizations") for m in d._head.modules())  # the head has none
    with torch.no_grad():
        for _ in range(10):  # one power iteration per training-mode forward
            d(torch.randn(2, 1, 32, 32))
    d.eval()
    sigmas = [torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item() for m in convs]
    assert sigmas == pytest.approx([1.0] * 4, abs=1e-2)


# The authors' numbers (their code, float32, CPU), scratch script: torch.manual_seed(0); G, then D,
# built and initialised as their trainer does; x, x2 = randn((n, *shape)) from generators seeded 1, 2;
# G(x) in eval mode; D in training mode through their queued_forward with FastQueue(3) for real and
# fake: (real, x), (fake, x2), (real, x2), (fake, x), (real, x) pushing, then (fake, x2) reading; then
# every parameter (named_parameters order) set to 0.1 * sin(0.37 * k + i), G and D (training mode, no
# queue) at xs = sin(0.11 * k) reshaped.
FINGERPRINTS = {
    "small": ((SMALL_G, SMALL_D, (2, 1, 32, 32)), dict(
        param_sums=(107.33263627330115, 2179.381403879822, 73.51427849419504, 1531.8982336553024),
        G_sum=1023.993408203125, D_seq=[2.1172173023223877, 1.7650120258331299, 1.748811960220337,
                                       2.1506383419036865, 2.1370127201080322, 1.7645610570907593],
        filled_G=(1045.024658203125, 21.02461051940918, [0.5088005065917969, 0.5087689757347107, 0.508817195892334,
                                                         0.5088691711425781]),
        filled_D=(0.7765823602676392, 0.7765823602676392))),
    "afhq": (({}, {}, (1, 3, 256, 256)), dict(
        param_sums=(9095.32242186879, 603357.3740165181, 550.6997563765458, 61933.70167751794),
        G_sum=98301.21875, D_seq=[-38.32051086425781, -39.88331604003906, -40.15266418457031, -38.0460319519043,
                                  -38.13713836669922, -40.061805725097656],
        filled_G=(98028.984375, 3013.62744140625, [0.5202717185020447, 0.5202187895774841, 0.5203069448471069,
                                                   0.5202034711837769]),
        filled_D=(-40.54621887207031, 78.17731475830078))),
}


@pytest.mark.slow
@pytest.mark.parametrize("setting", FINGERPRINTS)
def test_same_seed_same_weights_and_outputs_as_the_authors(setting):
    """Same construction order and initialisation as theirs: the same seed gives the same weights (so
    their state dicts load into ours, key for key), and the same weights the same outputs."""
    (g_args, d_args, shape), want = FINGERPRINTS[setting]
    close = dict(rel=1e-4)
    torch.manual_seed(0)
    g, d = UVCGAN2Generator(**g_args), UVCGAN2Discriminator(**d_args)
    sums = (sum(p.double().sum().item() for p in g.parameters()), sum(p.double().abs().sum().item() for p in g.parameters()),
            sum(p.double().sum().item() for p in d.parameters()), sum(p.double().abs().sum().item() for p in d.parameters()))
    assert sums == pytest.approx(want["param_sums"], rel=1e-9)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    x2 = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert g.eval()(x).sum().item() == pytest.approx(want["G_sum"], **close)
        d.train()
        seq = [d(v, queue=q, update_queue=True).sum().item()
               for q, v in [("real", x), ("fake", x2), ("real", x2), ("fake", x), ("real", x)]]
        seq.append(d(x2, queue="fake").sum().item())
        assert seq == pytest.approx(want["D_seq"], **close)
        for net in (g, d):
            for i, (_, v) in enumerate(net.named_parameters()):
                v.copy_((torch.sin(torch.arange(v.numel(), dtype=torch.float64) * 0.37 + i) * 0.1).reshape(v.shape))
        xs = torch.sin(torch.arange(x.numel(), dtype=torch.float64) * 0.11).reshape(shape).float()
        y, o = g(xs), d(xs)
    total, dev, first = want["filled_G"]
    assert (y.sum().item(), (y - 0.5).abs().sum().item()) == (pytest.approx(total, **close), pytest.approx(dev, **close))
    assert y.flatten()[:4].tolist() == pytest.approx(first, **close)
    assert (o.sum().item(), o.abs().sum().item()) == pytest.approx(want["filled_D"], **close)
