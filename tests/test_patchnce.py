"""CUT's PatchNCE loss (Park et al., ECCV 2020) and the feature-extraction helper it reads."""

from __future__ import annotations

import math

import pytest
import torch

from unpaired import list_components
from unpaired.plugin.features import extract_features, feature_channels
from unpaired_plugins.losses.patchnce import PatchNCELoss, patch_nce
from unpaired_plugins.networks.resnet import ResnetGenerator

T = 0.07


@pytest.fixture
def net():
    torch.manual_seed(0)
    return ResnetGenerator(in_channels=3, ngf=8, n_blocks=2)


def _ce0(logits):  # -log softmax(logits)[0], in plain Python
    return -(logits[0] - math.log(sum(math.exp(v) for v in logits)))


def test_patch_nce_by_hand():
    # N=1, P=3, D=2 unit vectors; S[i][j] = q_i . k_j written out.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=torch.float64)
    k = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    # logits row i: [S_ii, S_i0, S_i1, S_i2] with the diagonal negative S_ii replaced by -10
    rows = [[0.8, -10.0, 0.0, 1.0], [1.0, 0.6, -10.0, 0.0], [0.6, 0.96, 0.8, -10.0]]
    expected = [_ce0([v / T for v in r]) for r in rows]
    got = patch_nce(q, k, T, batch_size=1)
    assert got.shape == (3,)
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


def test_patch_nce_orthonormal_identical_and_shuffled():
    P = 4
    f = torch.eye(P, dtype=torch.float64)
    # positive 1/T, one masked negative -10/T, P-1 negatives 0:
    # -log(e^{1/T} / (e^{1/T} + (P-1) + e^{-10/T})) = log(1 + (P-1) e^{-1/T} + e^{-11/T})
    hand = math.log(1 + (P - 1) * math.exp(-1 / T) + math.exp(-11 / T))
    assert patch_nce(f, f, T).tolist() == pytest.approx([hand] * P, abs=1e-6)
    shuffled = f[[1, 2, 3, 0]]
    assert patch_nce(f, shuffled, T).mean() > 10 * hand
    # two images: negatives only from the same image, so both images give the N=1 value; one
    # "batch" of 2P rows would count the other image's identical patch as a negative (dot 1).
    two = torch.cat([f, f])
    assert patch_nce(two, two, T, batch_size=2).tolist() == pytest.approx([hand] * 2 * P, abs=1e-6)
    assert (patch_nce(two, two, T, batch_size=1) > math.log(2)).all()


def test_extract_features_matches_slices(net):
    x = torch.randn(2, 3, 16, 16)
    feats = extract_features(net, x, [0, 4, 8])
    for i, f in zip([0, 4, 8], feats):
        assert torch.equal(f, net.model[: i + 1](x))
    # order of `layers` kept; layer 2 is a norm followed by an in-place ReLU: still pre-ReLU
    f8, f0, f2 = extract_features(net, x, [8, "model.0", 2])
    assert torch.equal(f8, feats[2]) and torch.equal(f0, feats[0])
    assert torch.equal(f2, net.model[:3](x)) and (f2 < 0).any()


def test_extract_features_stops_early_and_keeps_gradients(net):
    calls = []
    handle = net.model[-1].register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, 3, 16, 16)
    net(x)
    assert calls == [1]
    feats = extract_features(net, x, [0, 4, 8])
    assert calls == [1]  # the decoder never ran
    handle.remove()
    assert all(not m._forward_hooks for m in net.modules())  # our hooks were removed
    feats[2].pow(2).mean().backward()
    assert net.model[1].weight.grad is not None and net.model[1].weight.grad.abs().sum() > 0


def test_feature_channels(net):
    # ngf=8, 2 blocks: 0 = ReflectionPad of the input (3), 4 = 1st stride-2 conv (2*ngf = 16),
    # 8 = norm after the 2nd stride-2 conv (4*ngf = 32), 10-11 the blocks, 12 = 1st transposed
    # conv (2*ngf = 16), 16 = norm after the 2nd transposed conv (ngf = 8).
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert feature_channels(net, [0, 4, 8, 12, 16]) == [3, 16, 32, 16, 8]
    assert feature_channels(net, ["model.10.conv_block.1", -1]) == [32, 3]
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # CUT's setting, ngf=64 and 9 blocks: layers 12 and 16 are residual blocks (4*ngf)
    assert feature_channels(ResnetGenerator(ngf=64, n_blocks=9), [0, 4, 8, 12, 16]) == [
        3, 128, 256, 256, 256]


def test_loss_heads_and_parameters(net):
    loss = PatchNCELoss(net, num_patches=16)
    assert "patchnce" in list_components("consistency_loss")
    n_params = sum(p.numel() for p in loss.parameters())
    assert n_params == sum(c * 256 + 256 + 256 * 256 + 256 for c in [3, 16, 32, 16, 8])
    assert len(list(loss.parameters())) == 5 * 4  # the heads only, not the generator
    assert sum(p.numel() for p in PatchNCELoss(net, use_mlp=False).parameters()) == 0


def test_loss_same_positions_for_query_and_key(net):
    loss = PatchNCELoss(net, num_patches=16)
    x, y = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    torch.manual_seed(1)
    same = loss(x, x, net)
    torch.manual_seed(1)
    other = loss(y, x, net)
    assert same.ndim == 0 and same < 0.5 < 2.0 < other  # q == k at every sampled position


def test_loss_backward_and_bf16(net):
    loss = PatchNCELoss(net, num_patches=16)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    loss(net(x), x, net).backward()
    assert all(h[0].weight.grad.abs().sum() > 0 for h in loss.heads)
    assert net.model[1].weight.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(net(x), x, net)
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_loss_on_meta():
    with torch.device("meta"):
        g = ResnetGenerator(ngf=8, n_blocks=2)
    loss = PatchNCELoss(g, num_patches=16)
    assert all(p.is_meta for p in loss.parameters())
    x = torch.empty(2, 3, 16, 16, device="meta")
    value = loss(g(x), x, g)
    assert value.is_meta and value.shape == ()


@pytest.mark.parametrize("args, match", [
    ({"layers": [0, 40]}, "layer 40: model has 21 layers"),
    ({"layers": ["model.44"]}, "Did you mean 'model.4'"),
    ({"layers": []}, "non-empty"),
    ({"num_patches": 0}, "num_patches"),
    ({"nce_T": 0.0}, "nce_T"),
    ({"init": "xavir"}, "known: normal, xavier"),
])
def test_bad_arguments(net, args, match):
    with pytest.raises(ValueError, match=match):
        PatchNCELoss(net, **args)


def test_l2_normalize_matches_cut_and_keeps_zero_rows_finite():
    from unpaired_plugins.losses.patchnce import l2_normalize

    x = torch.randn(5, 8)
    x[2] = 0  # a patch of a ReLU layer that is all zero (small generators have them)
    x.requires_grad_(True)
    y = l2_normalize(x)
    cut = x / (x.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)  # CUT's Normalize(2)
    assert torch.allclose(y, cut, atol=1e-7) and (y[2] == 0).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    cut_grad = torch.autograd.grad(cut.sum(), x)[0]
    assert not torch.isfinite(cut_grad).all()  # what the reference's form gives: why ours differs
