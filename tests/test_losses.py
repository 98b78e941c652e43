"""Loss plugins: values on small fixed tensors, worked out by hand in each test."""

import math

import kornia
import pytest
import torch
from torch import nn

from unpaired import Registry
from unpaired_plugins.losses import adversarial, consistency
from unpaired_plugins.losses.adversarial import (
    BCEGANLoss,
    HingeGANLoss,
    LSGANLoss,
    WGANGPLoss,
    gradient_penalty,
    lsgan_loss,
)
from unpaired_plugins.losses.consistency import L1Loss, PerceptualLoss, SSIMLoss, l1_loss, l2_loss

# Discriminator outputs used throughout. An identity "discriminator" returns its input, so passing
# these maps as images makes D(real) = R and D(fake) = P.
P = [0.5, -1.0, 2.0, 0.0]  # D(fake)
R = [1.0, 0.0, 0.5, 2.0]  # D(real)


def t(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 2, 2)


class MultiScale(nn.Module):
    """Two 'scales': the input and twice the input."""

    def forward(self, x):
        return [x, 2 * x]


def mean(xs):
    return sum(xs) / len(xs)


# -- registry -----------------------------------------------------------------------------------
def test_registered_names():
    reg = Registry(entry_points=False)
    reg.register_plugin(adversarial)
    reg.register_plugin(consistency)
    assert reg.names("adversarial_loss") == ["bce", "hinge", "lsgan", "wgan_gp"]
    assert reg.names("consistency_loss") == ["diversity", "l1", "l2", "perceptual", "ssim"]
    assert isinstance(reg.create("adversarial_loss", "lsgan", real_label=0.9), LSGANLoss)
    assert isinstance(reg.create("consistency_loss", "l1"), L1Loss)


# -- LSGAN --------------------------------------------------------------------------------------
def test_lsgan_generator():
    # mean((p - 1)^2) = (0.25 + 4 + 1 + 1) / 4 = 6.25 / 4
    loss = LSGANLoss().generator_loss(nn.Identity(), t(P))
    assert loss.item() == pytest.approx(1.5625)


def test_lsgan_discriminator():
    # real: (r - 1)^2 = 0, 1, 0.25, 1 -> 2.25 / 4 = 0.5625
    # fake: p^2 = 0.25, 1, 4, 0 -> 5.25 / 4 = 1.3125
    loss = LSGANLoss().discriminator_loss(nn.Identity(), t(R), t(P))
    assert loss.item() == pytest.approx(0.5625 + 1.3125)


def test_lsgan_label_smoothing():
    # generator target 0.9: (p - 0.9)^2 = 0.16, 3.61, 1.21, 0.81 -> 5.79 / 4
    loss = LSGANLoss(real_label=0.9).generator_loss(nn.Identity(), t(P))
    assert loss.item() == pytest.approx(1.4475)
    # discriminator, real 0.9 and fake 0.1:
    # real: (r - 0.9)^2 = 0.01, 0.81, 0.16, 1.21 -> 2.19 / 4 = 0.5475
    # fake: (p - 0.1)^2 = 0.16, 1.21, 3.61, 0.01 -> 4.99 / 4 = 1.2475
    loss = LSGANLoss(0.9, 0.1).discriminator_loss(nn.Identity(), t(R), t(P))
    assert loss.item() == pytest.approx(0.5475 + 1.2475)


def test_lsgan_target_follows_dtype():
    pred = t(P).double()
    loss = lsgan_loss(pred, True)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(1.5625)


def test_multiscale_is_mean_over_scales():
    # scale 1: 1.5625 (above). scale 2, 2p = 1, -2, 4, 0: (2p - 1)^2 = 0, 9, 9, 1 -> 19 / 4 = 4.75
    loss = LSGANLoss().generator_loss(MultiScale(), t(P))
    assert loss.item() == pytest.approx((1.5625 + 4.75) / 2)
    # discriminator side, hinge: scale 1 is 0.375 + 1.375 (see test_hinge);
    # scale 2, 2r = 2, 0, 1, 4: relu(1 - 2r) = 0, 1, 0, 0 -> 0.25;
    #          2p = 1, -2, 4, 0: relu(1 + 2p) = 2, 0, 5, 1 -> 2.0
    loss = HingeGANLoss().discriminator_loss(MultiScale(), t(R), t(P))
    assert loss.item() == pytest.approx((0.375 + 0.25) / 2 + (1.375 + 2.0) / 2)


# -- BCE ----------------------------------------------------------------------------------------
def softplus(x):  # log(1 + exp(x))
    return math.log(1.0 + math.exp(x))


def test_bce_generator():
    # target 1: -log(sigmoid(p)) = log(1 + exp(-p))
    expected = mean([softplus(-p) for p in P])
    loss = BCEGANLoss().generator_loss(nn.Identity(), t(P))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bce_discriminator():
    # real (target 1): log(1 + exp(-r)); fake (target 0): -log(1 - sigmoid(p)) = log(1 + exp(p))
    expected = mean([softplus(-r) for r in R]) + mean([softplus(p) for p in P])
    loss = BCEGANLoss().discriminator_loss(nn.Identity(), t(R), t(P))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bce_label_smoothing():
    # target 0.9: -(0.9 log sigmoid(p) + 0.1 log(1 - sigmoid(p))) = 0.9 log(1+e^-p) + 0.1 log(1+e^p)
    expected = mean([0.9 * softplus(-p) + 0.1 * softplus(p) for p in P])
    loss = BCEGANLoss(real_label=0.9).generator_loss(nn.Identity(), t(P))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() != pytest.approx(mean([softplus(-p) for p in P]), rel=1e-3)


def test_bce_rejects_labels_outside_unit_interval():
    with pytest.raises(ValueError, match="real_label"):
        BCEGANLoss(real_label=1.5)


# -- hinge --------------------------------------------------------------------------------------
def test_hinge():
    # D real: relu(1 - r) = 0, 1, 0.5, 0 -> 1.5 / 4 = 0.375
    # D fake: relu(1 + p) = 1.5, 0, 3, 1 -> 5.5 / 4 = 1.375
    loss_d = HingeGANLoss().discriminator_loss(nn.Identity(), t(R), t(P))
    assert loss_d.item() == pytest.approx(0.375 + 1.375)
    # G: -mean(p) = -(0.5 - 1 + 2 + 0) / 4
    loss_g = HingeGANLoss().generator_loss(nn.Identity(), t(P))
    assert loss_g.item() == pytest.approx(-0.375)


# -- WGAN-GP ------------------------------------------------------------------------------------
class Linear(nn.Module):
    """D(x) = sum(w * x) per sample: its input gradient is w, so ||grad|| = ||w|| exactly."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w).view(1, 1, 2, 2))

    def forward(self, x):
        return (self.w * x).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1)


W = [2.0, 1.0, 2.0, 0.0]  # ||w|| = sqrt(4 + 1 + 4) = 3


def test_gradient_penalty_linear_discriminator():
    d = Linear(W)
    real, fake = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    # (||w|| - 1)^2 = 4, whatever eps
    for eps in (None, torch.tensor([0.0, 1.0]), torch.tensor([0.3, 0.7])):
        assert gradient_penalty(d, real, fake, eps).item() == pytest.approx(4.0)
    # lambda = 10: 10 * 4 = 40, and it is the critic loss minus the Wasserstein terms
    loss_d = WGANGPLoss().discriminator_loss(d, real, fake)
    wasserstein = (-d(real).mean() + d(fake).mean()).item()
    assert loss_d.item() == pytest.approx(wasserstein + 40.0, rel=1e-5)


def test_gradient_penalty_differentiable_in_discriminator_parameters():
    d = Linear(W)
    real, fake = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    (10.0 * gradient_penalty(d, real, fake)).backward()
    # d/dw 10 (||w|| - 1)^2 = 10 * 2 (||w|| - 1) * w / ||w|| = 10 * 2 * 2 / 3 * w = 40/3 w
    expected = torch.tensor(W).view(1, 1, 2, 2) * 40.0 / 3.0
    torch.testing.assert_close(d.w.grad, expected)


def test_gradient_penalty_sums_scales():
    class TwoScales(Linear):
        def forward(self, x):
            out = super().forward(x)
            return [out, out]

    # the gradient of the sum of both scales is 2w, norm 6: (6 - 1)^2 = 25
    d = TwoScales(W)
    assert gradient_penalty(d, torch.randn(1, 1, 2, 2), torch.randn(1, 1, 2, 2)).item() == (
        pytest.approx(25.0)
    )


def test_wgan_gp_identity_discriminator():
    # -mean(r) + mean(p) = -3.5/4 + 1.5/4 = -0.5; grad of sum(x) is all ones, norm sqrt(4) = 2:
    # penalty 10 * (2 - 1)^2 = 10
    loss_d = WGANGPLoss().discriminator_loss(nn.Identity(), t(R), t(P))
    assert loss_d.item() == pytest.approx(-0.5 + 10.0)
    assert WGANGPLoss(lambda_gp=0.0).discriminator_loss(nn.Identity(), t(R), t(P)).item() == (
        pytest.approx(-0.5)
    )
    # G: -mean(p) = -1.5 / 4
    assert WGANGPLoss().generator_loss(nn.Identity(), t(P)).item() == pytest.approx(-0.375)


def test_gradient_penalty_eps_must_match_batch():
    with pytest.raises(ValueError, match="one value per sample"):
        gradient_penalty(nn.Identity(), t(R), t(P), torch.tensor([0.5, 0.5]))


# -- L1 / L2 ------------------------------------------------------------------------------------
A = [0.5, -0.5, 1.0, 0.0]
B = [0.0, 0.0, 0.0, -1.0]


def test_l1_l2_values():
    # |a - b| = 0.5, 0.5, 1, 1 -> 3 / 4; (a - b)^2 = 0.25, 0.25, 1, 1 -> 2.5 / 4
    assert l1_loss(t(A), t(B)).item() == pytest.approx(0.75)
    assert L1Loss()(t(A), t(B)).item() == pytest.approx(0.75)
    assert l2_loss(t(A), t(B)).item() == pytest.approx(0.625)
    assert consistency.L2Loss()(t(A), t(B)).item() == pytest.approx(0.625)


@pytest.mark.parametrize("loss", [L1Loss(), consistency.L2Loss(), SSIMLoss()], ids=str)
def test_channel_mismatch_is_clear(loss):
    with pytest.raises(ValueError, match="3 vs 1 channels"):
        loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))


# -- SSIM ---------------------------------------------------------------------------------------
def test_ssim_identical_is_zero():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert SSIMLoss()(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_value_is_one_minus_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(2, 3, 16, 16, generator=g)).clamp(-1, 1)
    loss = SSIMLoss()(x, y)
    # documented: 1 - mean(SSIM map) of the images mapped to [0, 1]
    ssim_map = kornia.metrics.ssim((x + 1) / 2, (y + 1) / 2, 11, max_val=1.0, eps=0.0)
    assert loss.item() > 0.05
    assert loss.item() == pytest.approx(1.0 - ssim_map.mean().item(), abs=1e-6)
    # ... which is twice kornia's (1 - SSIM) / 2 (its clamp is inactive here)
    dssim = kornia.losses.ssim_loss((x + 1) / 2, (y + 1) / 2, 11, max_val=1.0, eps=0.0)
    assert loss.item() == pytest.approx(2.0 * dssim.item(), abs=1e-6)


def test_ssim_rejects_even_window():
    with pytest.raises(ValueError, match="odd"):
        SSIMLoss(window_size=10)


# -- perceptual ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def perceptual():
    torch.manual_seed(0)
    return PerceptualLoss()


def test_perceptual(perceptual):
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    assert perceptual(x, x).item() == pytest.approx(0.0, abs=1e-7)
    x.requires_grad_(True)
    loss = perceptual(x, y)
    assert loss.item() > 0
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    params = list(perceptual.parameters())
    assert params and all(not p.requires_grad and p.grad is None for p in params)


def test_perceptual_stays_frozen_in_train_mode(perceptual):
    perceptual.train()
    assert perceptual.training and not perceptual.backbone.training
    perceptual.eval()


def test_perceptual_grayscale_and_mismatch(perceptual):
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    assert perceptual(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert perceptual(x, -x).item() > 0
    with pytest.raises(ValueError, match="3 vs 1 channels"):
        perceptual(torch.zeros(1, 3, 32, 32), x)


def test_perceptual_unknown_backbone():
    with pytest.raises(ValueError, match="unknown timm backbone"):
        PerceptualLoss(backbone="resnet_does_not_exist")
