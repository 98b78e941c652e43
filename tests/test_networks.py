"""Network and init plugins: reference parameter counts, shapes, input checks, registration."""

import pytest
import torch
from torch import nn

import unpaired
from unpaired_plugins.networks import init, patchgan, resnet, timm_networks, unet
from unpaired_plugins.networks.layers import InstanceNorm2d, norm_layer, padding


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "build, expected",
    [
        (resnet.resnet_9blocks, 11_378_179),
        (resnet.resnet_6blocks, 7_837_699),
        (patchgan.basic, 2_764_737),
        (patchgan.PixelDiscriminator, 8_705),
    ],
)
def test_reference_parameter_counts(build, expected):
    assert n_params(build()) == expected


@torch.no_grad()
def test_resnet_keeps_shape_and_range():
    x = torch.rand(1, 3, 64, 48) * 2 - 1
    y = resnet.resnet_9blocks()(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_resnet_checks_input():
    net = resnet.resnet_6blocks()
    with pytest.raises(ValueError, match=r"resnet_6blocks expects images of shape \(N, 3, H, W\)"):
        net(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 3, 66, 64))


@torch.no_grad()
def test_patchgan_shapes():
    assert patchgan.basic()(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert patchgan.PixelDiscriminator(in_channels=1)(torch.zeros(1, 1, 8, 8)).shape == (1, 1, 8, 8)


def _fill(net: nn.Module) -> None:
    """Every floating state-dict entry (sorted by name) by one rule, as done to the authors' networks."""
    with torch.no_grad():
        for i, (_, v) in enumerate(sorted(net.state_dict().items())):
            v.copy_((torch.sin(torch.arange(v.numel(), dtype=torch.float64) * 0.37 + i) * 0.05).reshape(v.shape))


@torch.no_grad()
def test_antialiased_networks_equal_cuts_defaults():
    """CUT's own ``ResnetGenerator`` and ``NLayerDiscriminator`` with their default anti-aliasing
    (taesungp/contrastive-unpaired-translation at b3ac297, built on the CPU in a scratch folder
    outside this repository; instance norm, weights filled as by ``_fill``): parameter counts
    11,378,179 and 2,764,737 at 3 channels and width 64 (as without anti-aliasing), 49,377 and
    44,281 at 1 channel, width 8 and 2 blocks; their state dicts load key for key; outputs below.
    Their own float32 output is 1.7e-5 from the same network in float64, where ours equals theirs
    to 5e-14: elements are compared to 3e-5."""
    big_g = resnet.ResnetGenerator(3, 3, 64, n_blocks=9, antialias=True, antialias_up=True)
    assert (n_params(big_g), n_params(patchgan.NLayerDiscriminator(3, 64, 3, antialias=True))) == (11_378_179, 2_764_737)
    g, d = resnet.ResnetGenerator(1, 1, 8, n_blocks=2, antialias=True, antialias_up=True), \
        patchgan.NLayerDiscriminator(1, 8, 3, antialias=True)
    assert (n_params(g), n_params(d), len(g.state_dict()), len(d.state_dict())) == (49_377, 44_281, 24, 13)
    _fill(g)
    _fill(d)
    x = torch.sin(torch.arange(2 * 32 * 32, dtype=torch.float64) * 0.11).reshape(2, 1, 32, 32).float()
    y, dy = g(x), d(x)
    close = dict(rel=1e-4, abs=3e-5)
    assert y.shape == x.shape and (y.sum().item(), y.abs().sum().item()) == (
        pytest.approx(-115.73329162597656, **close), pytest.approx(411.051513671875, **close))
    assert y.flatten()[:4].tolist() == pytest.approx([-0.0288671833, 0.0004105530, 0.0315893404, 0.0558970571], **close)
    assert dy.shape == (2, 1, 2, 2) and dy.sum().item() == pytest.approx(0.8570557236671448, **close)
    assert dy.flatten()[:4].tolist() == pytest.approx([0.1542377770, 0.2060805559, 0.1508419812, 0.0705191642], **close)
    # the option off is the CycleGAN network, stride-2 convolutions
    assert patchgan.NLayerDiscriminator(1, 8, 3)(x).shape == (2, 1, 2, 2)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())


@torch.no_grad()
def test_multiscale_returns_maps_coarser_later():
    maps = patchgan.MultiscaleDiscriminator(ndf=8)(torch.zeros(1, 3, 128, 128))
    assert isinstance(maps, list) and len(maps) == 3
    sides = [m.shape[-1] for m in maps]
    assert all(m.shape[:2] == (1, 1) for m in maps) and sides == sorted(sides, reverse=True)
    assert len(set(sides)) == 3


def test_unet_rejects_indivisible_input_before_forward():
    net = unet.unet_256(ngf=8)
    ran = []
    net.model.register_forward_pre_hook(lambda *_: ran.append(True))
    with pytest.raises(ValueError, match="unet_256 needs .* divisible by 256; got 100x120") as err:
        net(torch.zeros(1, 3, 100, 120))
    assert "crop_size: 256" in str(err.value) and not ran
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.zeros(1, 4, 256, 256))


@torch.no_grad()
def test_unet_128_forward():
    net = unet.unet_128()
    assert net.size_divisor == 128
    y = net(torch.zeros(1, 3, 128, 128))
    assert y.shape == (1, 3, 128, 128) and y.abs().max() <= 1


@torch.no_grad()
def test_timm_unet_forward():
    net = timm_networks.TimmUnet("resnet18", in_channels=1, out_channels=3)
    assert net.size_divisor == 32
    y = net.eval()(torch.zeros(2, 1, 64, 64))
    assert y.shape == (2, 3, 64, 64) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.zeros(2, 1, 48, 64))


@torch.no_grad()
def test_timm_features_forward():
    x = torch.zeros(2, 3, 64, 64)
    assert timm_networks.TimmFeaturesDiscriminator("resnet18")(x).shape == (2, 1, 2, 2)
    maps = timm_networks.TimmFeaturesDiscriminator("resnet18", num_maps=2)(x)
    assert [m.shape for m in maps] == [(2, 1, 4, 4), (2, 1, 2, 2)]
    with pytest.raises(ValueError, match="num_maps"):
        timm_networks.TimmFeaturesDiscriminator("resnet18", num_maps=9)


def test_normal_init_matches_reference():
    net = nn.Sequential(nn.Conv2d(256, 512, 4), nn.BatchNorm2d(512), nn.Linear(64, 64))
    init.normal(net, gain=0.02)
    assert net[0].weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert net[1].weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all(torch.count_nonzero(m.bias) == 0 for m in net)


@pytest.mark.parametrize("scheme", [init.xavier, init.kaiming, init.orthogonal])
def test_other_inits_zero_biases(scheme):
    net = patchgan.basic(ndf=8)
    scheme(net, gain=0.02)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs if c.bias is not None)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_instance_norm_equals_torchs(memory_format):
    """On the CPU the instance norm runs as group norm with a group per channel: torch's
    InstanceNorm2d(affine=False) values and gradients, in either memory format."""
    torch.manual_seed(0)
    x = (torch.randn(3, 5, 7, 6) * 4 + 2).contiguous(memory_format=memory_format)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(3, 5, 7, 6)
    out, ref = norm_layer("instance")(5)(ours), nn.InstanceNorm2d(5)(theirs)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.grad, theirs.grad, atol=1e-5, rtol=1e-5)
    assert out.mean(dim=(2, 3)).abs().max() < 1e-5 and ((out.var(dim=(2, 3), unbiased=False) - 1).abs().max() < 1e-3)


def test_instance_norm_takes_group_norm_only_where_it_is_faster(monkeypatch):
    calls = []
    group_norm = torch.nn.functional.group_norm
    monkeypatch.setattr(torch.nn.functional, "group_norm", lambda *a, **k: calls.append(1) or group_norm(*a, **k))
    x = torch.randn(2, 4, 8, 8)
    InstanceNorm2d(4)(x)
    assert calls == [1]  # NCHW on the CPU: group norm
    InstanceNorm2d(4)(x.contiguous(memory_format=torch.channels_last))
    InstanceNorm2d(4, track_running_stats=True)(x)
    InstanceNorm2d(4)(x[0])  # unbatched (C, H, W)
    assert calls == [1]  # torch's instance norm for the rest


def test_instance_norm_in_bf16_stays_bf16_and_close():
    x = torch.randn(2, 4, 8, 8)
    with torch.autocast("cpu", torch.bfloat16):
        out = InstanceNorm2d(4)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), nn.InstanceNorm2d(4)(x), atol=0.05, rtol=0.02)


def test_cyclegan_networks_use_our_instance_norm():
    """The generators and discriminators built with ``norm: instance`` use the CPU-fast layer,
    and it keeps bf16 under autocast like torch's (no fp32 activations after a norm)."""
    nets = [resnet.resnet_6blocks(ngf=8), patchgan.basic(ndf=8), unet.unet_128(ngf=8)]
    for net in nets:
        kinds = {type(m) for m in net.modules()}
        assert InstanceNorm2d in kinds and nn.InstanceNorm2d not in kinds, type(net).__name__
    seen = []
    for m in nets[0].modules():
        if isinstance(m, InstanceNorm2d):
            m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.autocast("cpu", torch.bfloat16):
        nets[0](torch.rand(1, 3, 16, 16) * 2 - 1)
    assert len(seen) == 5 + 2 * 6 and set(seen) == {torch.bfloat16}  # 5 outside the blocks, 2 per block


def test_bad_norm_and_padding_name_accepted_values():
    with pytest.raises(ValueError, match="instance, batch, none"):
        norm_layer("group")
    with pytest.raises(ValueError, match="reflect, replicate, zero"):
        padding("circular", 1)


def test_registry_lists_network_components():
    registry = unpaired.Registry()
    expected = {
        "generator": {"resnet_9blocks", "resnet_6blocks", "resnet", "unet_256", "unet_128",
                      "unet", "timm_unet"},
        "discriminator": {"basic", "n_layers", "pixel", "multiscale", "timm_features"},
        "init": {"normal", "xavier", "kaiming", "orthogonal"},
    }
    for kind, names in expected.items():
        assert names <= set(registry.names(kind))
        for name in names:
            assert "unpaired" in registry.get(kind, name).provider
    net = registry.create("generator", "resnet_6blocks", ngf=8)
    assert isinstance(net, resnet.ResnetGenerator) and net.name == "resnet_6blocks"
