"""StarGAN v2's networks against the authors' (clovaai/stargan-v2, core/model.py).

The counts were taken from the authors' own code, built in a scratch folder outside this
repository (their Generator, MappingNetwork, StyleEncoder and Discriminator with the arguments of
main.py at each setting); see the issue note of recipe language v2 for how."""

from __future__ import annotations

import pytest
import torch

from unpaired_plugins.networks.stargan import (StarGANDiscriminator, StarGANGenerator, StarGANMapping,
                                              StarGANStyleEncoder)


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# (img_size, num_domains, style_dim, w_hpf): G, mapping network, style encoder, D, as the authors' code counts them
AUTHORS = {
    "afhq": ((256, 3, 64, 0), (33_892_995, 3_259_072, 20_949_760, 20_852_803)),
    "celeba_hq": ((256, 2, 64, 1), (43_467_395, 2_438_272, 20_916_928, 20_852_290)),
    "32px_10_domains": ((32, 10, 16, 0), (28_445_187, 8_758_432, 18_450_080, 18_373_130)),
}


@pytest.mark.parametrize("setting", AUTHORS)
def test_parameter_counts_equal_the_authors(setting):
    (size, domains, style, w_hpf), expected = AUTHORS[setting]
    nets = (StarGANGenerator(size, style, w_hpf=w_hpf), StarGANMapping(16, style, domains),
            StarGANStyleEncoder(size, style, domains), StarGANDiscriminator(size, domains))
    assert tuple(count(n) for n in nets) == expected


def test_shapes_and_the_domain_index():
    g, m = StarGANGenerator(32, 16, base_dim=8, max_conv_dim=16, in_channels=1), StarGANMapping(16, 16, 3, hidden_dim=8)
    e = StarGANStyleEncoder(32, 16, 3, base_dim=8, max_conv_dim=16, in_channels=1)
    d = StarGANDiscriminator(32, 3, base_dim=8, max_conv_dim=16, in_channels=1)
    x, y, z = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 1]), torch.randn(4, 16)
    s = m(z, y)
    assert s.shape == (4, 16) and e(x, y).shape == (4, 16) and g(x, s).shape == x.shape and d(x, y).shape == (4,)
    # D(x, y) is, for each sample, the output of D's head for the sample's own domain
    all_domains = torch.stack([d(x, torch.full((4,), k)) for k in range(3)], 1)
    assert torch.equal(d(x, y), all_domains[torch.arange(4), y])
    with pytest.raises(ValueError, match="power of 2"):
        StarGANGenerator(28)


@pytest.mark.slow
def test_a_forward_pass_equals_the_authors_with_the_same_weights():
    """Every state-dict entry filled by one rule, in state-dict order (the authors' names and order
    are ours), the 32-pixel 10-domain setting: the values their networks gave (float32, their code
    at commit 875b70a)."""
    nets = {"M": StarGANMapping(16, 16, 10), "E": StarGANStyleEncoder(32, 16, 10),
            "G": StarGANGenerator(32, 16, w_hpf=0), "D": StarGANDiscriminator(32, 10)}
    with torch.no_grad():
        for net in nets.values():
            for i, (_, v) in enumerate(net.state_dict().items()):
                v.copy_((torch.sin(torch.arange(v.numel(), dtype=torch.float64) * 0.37 + i) * 0.05).reshape(v.shape))
        x = torch.sin(torch.arange(2 * 3 * 32 * 32, dtype=torch.float64) * 0.11).reshape(2, 3, 32, 32).float()
        y, z = torch.tensor([3, 7]), torch.cos(torch.arange(32, dtype=torch.float64) * 0.23).reshape(2, 16).float()
        s, s_e = nets["M"](z, y), nets["E"](x, y)
        out, d = nets["G"](x, s), nets["D"](x, y)
    close = dict(rel=1e-4)
    assert (s.sum().item(), s.abs().sum().item()) == (pytest.approx(-0.3643524051, **close), pytest.approx(6.293222427, **close))
    assert (s_e.sum().item(), s_e.abs().sum().item()) == (pytest.approx(-0.6970416307, **close),
                                                          pytest.approx(8.067775726, **close))
    assert (out.sum().item(), out.abs().sum().item()) == (pytest.approx(-603.164917, **close),
                                                          pytest.approx(1548.747803, **close))
    assert out[0, 0, 0, :4].tolist() == pytest.approx([0.2334261537, 0.2375974953, 0.2250617594, 0.2219445705], **close)
    assert d.tolist() == pytest.approx([-0.3278024495, 0.1245405674], **close)
