"""Adversarial losses (kind ``adversarial_loss``): LSGAN, vanilla GAN (BCE), hinge and WGAN-GP.

Each loss exists as plain functions on one logit map and as a thin
:class:`unpaired.plugin.losses.AdversarialLoss` subclass, which averages over the scales of a multi-scale
discriminator and adds any discriminator-side penalty.

Conventions shared by every function here:

- ``pred`` is a discriminator's logit map, usually (N, 1, h, w); any shape works, the loss is the
  mean over all its elements. Logits are unbounded (no sigmoid applied).
- Images given to a discriminator are (N, C, H, W) in [-1, 1].
- ``target_is_real`` says which side of the game the map is judged against: on the discriminator
  side ``True`` for real images and ``False`` for generated ones; on the generator side the loss
  always uses the real target (the generator wants its fakes called real).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired import Component, hookimpl
from unpaired.plugin.losses import AdversarialLoss, as_scales, check_same_shape

__all__ = [
    "BCEGANLoss",
    "HingeGANLoss",
    "LSGANLoss",
    "WGANGPLoss",
    "bce_gan_loss",
    "gradient_penalty",
    "hinge_gan_loss",
    "lsgan_loss",
    "wgan_loss",
]


# -- functions ----------------------------------------------------------------------------------
def _target(pred: Tensor, target_is_real: bool, real_label: float, fake_label: float) -> Tensor:
    # Built per call, never cached: dtype and device follow ``pred`` (AMP, multi-device).
    return torch.full_like(pred, real_label if target_is_real else fake_label)


def lsgan_loss(
    pred: Tensor, target_is_real: bool, real_label: float = 1.0, fake_label: float = 0.0
) -> Tensor:
    """Least-squares GAN loss of one logit map (Mao et al., "Least Squares Generative Adversarial
    Networks", ICCV 2017; the CycleGAN default).

    ``mean((pred - t)^2)`` with ``t = real_label`` if ``target_is_real`` else ``fake_label``.

    Args:
        pred: logit map (N, 1, h, w) (any shape), unbounded.
        target_is_real: compare against ``real_label`` (True) or ``fake_label`` (False).
        real_label: target of real images (and of the generator side); e.g. 0.9 for one-sided
            label smoothing.
        fake_label: target of generated images on the discriminator side.

    Returns:
        Scalar tensor.
    """
    return F.mse_loss(pred, _target(pred, target_is_real, real_label, fake_label))


def bce_gan_loss(
    pred: Tensor, target_is_real: bool, real_label: float = 1.0, fake_label: float = 0.0
) -> Tensor:
    """Vanilla (non-saturating) GAN loss of one logit map (Goodfellow et al., "Generative
    Adversarial Nets", NeurIPS 2014).

    Binary cross-entropy with logits against ``t``: ``mean(-t·log σ(pred) − (1−t)·log(1−σ(pred)))``;
    for ``t = 1`` this is ``mean(log(1 + exp(-pred)))``, for ``t = 0`` ``mean(log(1 + exp(pred)))``.

    Args:
        pred: logit map (N, 1, h, w) (any shape), unbounded (no sigmoid applied).
        target_is_real: compare against ``real_label`` (True) or ``fake_label`` (False).
        real_label: target of real images (and of the generator side), in [0, 1].
        fake_label: target of generated images on the discriminator side, in [0, 1].

    Returns:
        Scalar tensor.
    """
    return F.binary_cross_entropy_with_logits(
        pred, _target(pred, target_is_real, real_label, fake_label)
    )


def hinge_gan_loss(pred: Tensor, target_is_real: bool, for_discriminator: bool = True) -> Tensor:
    """Hinge GAN loss of one logit map (Lim & Ye, "Geometric GAN", 2017; Miyato et al.,
    "Spectral Normalization for Generative Adversarial Networks", ICLR 2018).

    Discriminator side: ``mean(relu(1 - pred))`` for real, ``mean(relu(1 + pred))`` for fake.
    Generator side (``for_discriminator=False``): ``-mean(pred)``, whatever ``target_is_real``.

    Args:
        pred: logit map (N, 1, h, w) (any shape), unbounded.
        target_is_real: real (True) or generated (False) images, on the discriminator side.
        for_discriminator: discriminator-side hinge (True) or generator-side linear loss (False).

    Returns:
        Scalar tensor.
    """
    if not for_discriminator:
        return -pred.mean()
    return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()


def wgan_loss(pred: Tensor, target_is_real: bool) -> Tensor:
    """Wasserstein critic loss of one map (Arjovsky et al., "Wasserstein GAN", ICML 2017).

    ``-mean(pred)`` when ``target_is_real`` (the critic's real side and the generator side),
    ``+mean(pred)`` otherwise (the critic's fake side).

    Args:
        pred: critic output (N, 1, h, w) (any shape), unbounded.
        target_is_real: the sign, as above.

    Returns:
        Scalar tensor.
    """
    return -pred.mean() if target_is_real else pred.mean()


def gradient_penalty(
    discriminator: nn.Module, real: Tensor, fake: Tensor, eps: Tensor | None = None, center: float = 1.0,
    per_sample: bool = True, reduction: str = "sum", pass_mix: bool = False,
) -> Tensor:
    """WGAN-GP gradient penalty, without its weight λ (Gulrajani et al., "Improved Training of
    Wasserstein GANs", NeurIPS 2017, eq. 3); with ``center`` 0 the zero-centred penalty on
    interpolates (Thanh-Tung et al., "Improving Generalization and Stability of GANs", ICLR 2019).

    ``mean_n((‖∇_x y_n(x̂)‖₂ − center)²)`` with ``x̂ = ε·real + (1−ε)·fake``, ``ε ~ U(0, 1)`` per
    sample (or one ε for the batch). ``y_n`` is sample n's output summed over all its elements
    and every scale (a multi-scale discriminator returns a list of maps), or averaged over each
    map's elements with ``reduction="mean"`` (UVCGAN2's ``GradientPenalty``, LS4GAN/uvcgan2
    ``torch/gradient_penalty.py``: one ε for the batch, the mean of each sample's logits). The norm
    of each sample is taken over all its non-batch dimensions. The gradient is computed with
    ``create_graph=True`` so the penalty is differentiable with respect to the discriminator's
    parameters. ``real`` and ``fake`` are detached first.

    Args:
        discriminator: maps (N, C, H, W) to a logit map or a list of logit maps.
        real: real images (N, C, H, W) in [-1, 1].
        fake: generated images (N, C, H, W) in [-1, 1], same shape as ``real``.
        eps: optional interpolation weights, N values (shape (N,) or broadcastable to
            (N, 1, ..., 1)), or one value when not ``per_sample``; drawn from U(0, 1) when
            ``None``. Given mainly for tests.
        center: the target norm: 1 (WGAN-GP) or 0 (zero-centred).
        per_sample: one ε per sample (True) or one for the whole batch (UVCGAN2).
        reduction: ``"sum"`` or ``"mean"`` of each sample's output elements.
        pass_mix: call ``discriminator(x̂, mix=ε)`` (one ε): a discriminator with a memory of
            past real and fake batches mixes it the same way (UVCGAN2's queues).

    Returns:
        Scalar tensor (≥ 0).

    Raises:
        ValueError: ``real`` and ``fake`` differ in shape, ``eps`` holds the wrong count of
            values, an unknown ``reduction``, or ``pass_mix`` with ``per_sample``.
    """
    check_same_shape(real, fake, "gradient penalty")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"gradient penalty: reduction is 'sum' or 'mean', got {reduction!r}.")
    if pass_mix and per_sample:
        raise ValueError("gradient penalty: a discriminator's memory of past batches belongs to no sample of this "
                         "one, so mixing it takes one weight for the batch: set per_sample to false.")
    n = real.shape[0] if per_sample else 1
    bshape = (n,) + (1,) * (real.ndim - 1)
    if eps is None:
        eps = torch.rand(bshape, device=real.device, dtype=real.dtype)
    else:
        eps = torch.as_tensor(eps, device=real.device, dtype=real.dtype)
        if eps.numel() != n:
            raise ValueError(
                f"gradient penalty: eps must hold {'one value per sample' if per_sample else 'one value'} ({n}), "
                f"got shape {tuple(eps.shape)}."
            )
        eps = eps.reshape(bshape)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    out = discriminator(x_hat, mix=eps.reshape(())) if pass_mix else discriminator(x_hat)
    if reduction == "sum":
        total = sum(p.sum() for p in as_scales(out))
    else:
        total = sum(p.flatten(1).mean(1).sum() for p in as_scales(out))
    (grad,) = torch.autograd.grad(total, x_hat, create_graph=True)
    norm = grad.flatten(1).float().norm(2, dim=1)
    return ((norm - center) ** 2).mean()


# -- modules ------------------------------------------------------------------------------------
class LSGANLoss(AdversarialLoss):
    """Least-squares GAN loss (Mao et al., ICCV 2017); the CycleGAN default.

    Per logit map (N, 1, h, w): discriminator ``mean((D(real) − real_label)²) +
    mean((D(fake) − fake_label)²)``; generator ``mean((D(fake) − real_label)²)``. Multi-scale maps
    are averaged over scales. Images are (N, C, H, W) in [-1, 1]. See :func:`lsgan_loss`.

    Args:
        real_label: target of real images and of the generator side (default 1.0; e.g. 0.9 for
            one-sided label smoothing).
        fake_label: target of generated images on the discriminator side (default 0.0).
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def criterion(self, pred: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        return lsgan_loss(pred, target_is_real, self.real_label, self.fake_label)

    def extra_repr(self) -> str:
        return f"real_label={self.real_label}, fake_label={self.fake_label}"


class BCEGANLoss(AdversarialLoss):
    """Vanilla GAN loss: binary cross-entropy with logits (Goodfellow et al., NeurIPS 2014).

    Per logit map (N, 1, h, w): discriminator ``BCE(D(real), real_label) + BCE(D(fake),
    fake_label)``; generator ``BCE(D(fake), real_label)`` (the non-saturating form). Multi-scale
    maps are averaged over scales. Images are (N, C, H, W) in [-1, 1]. See :func:`bce_gan_loss`.

    Args:
        real_label: target of real images and of the generator side, in [0, 1] (default 1.0).
        fake_label: target of generated images on the discriminator side, in [0, 1] (default 0.0).

    Raises:
        ValueError: a label outside [0, 1].
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        for what, value in (("real_label", real_label), ("fake_label", fake_label)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"bce: {what} must lie in [0, 1] (a probability), got {value}.")
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def criterion(self, pred: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        return bce_gan_loss(pred, target_is_real, self.real_label, self.fake_label)

    def extra_repr(self) -> str:
        return f"real_label={self.real_label}, fake_label={self.fake_label}"


class HingeGANLoss(AdversarialLoss):
    """Hinge GAN loss (Lim & Ye 2017; Miyato et al., ICLR 2018).

    Per logit map (N, 1, h, w): discriminator ``mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))``;
    generator ``−mean(D(fake))``. Multi-scale maps are averaged over scales. Images are
    (N, C, H, W) in [-1, 1]. See :func:`hinge_gan_loss`.

    Args:
        generator_side: ``linear`` (the generator's ``−mean(D(fake))``, Lim & Ye) or ``hinge``
            (``mean(relu(1 − D(fake)))``, the real-side hinge: what DCLGAN's code,
            JunlinHan/DCLGAN ``networks.GANLoss('hinge')``, gives its generators).

    Raises:
        ValueError: another ``generator_side``.
    """

    def __init__(self, generator_side: str = "linear"):
        super().__init__()
        if generator_side not in ("linear", "hinge"):
            raise ValueError(f"hinge: generator_side is 'linear' or 'hinge', got {generator_side!r}.")
        self.generator_side = generator_side

    def criterion(self, pred: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        return hinge_gan_loss(pred, target_is_real, for_discriminator or self.generator_side == "hinge")

    def extra_repr(self) -> str:
        return f"generator_side={self.generator_side!r}"


class WGANGPLoss(AdversarialLoss):
    """Wasserstein loss with gradient penalty (Gulrajani et al., NeurIPS 2017).

    Critic: ``−mean(D(real)) + mean(D(fake)) + lambda_gp · mean((‖∇_x D(x̂)‖₂ − 1)²)`` with
    ``x̂ = ε·real + (1−ε)·fake``, ``ε ~ U(0, 1)`` per sample (see :func:`gradient_penalty`);
    generator ``−mean(D(fake))``. Multi-scale maps are averaged over scales for the Wasserstein
    terms; the penalty differentiates the sum of all scales' outputs. Images are (N, C, H, W) in
    [-1, 1]. The paper's critic has no batch norm (the penalty is per sample); prefer instance or
    no normalisation in the discriminator.

    Args:
        lambda_gp: weight λ of the gradient penalty (default 10.0, the paper's value).

    Raises:
        ValueError: ``lambda_gp`` negative.
    """

    def __init__(self, lambda_gp: float = 10.0):
        super().__init__()
        if float(lambda_gp) < 0:
            raise ValueError(f"wgan_gp: lambda_gp must be >= 0, got {lambda_gp}.")
        self.lambda_gp = float(lambda_gp)

    def criterion(self, pred: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        return wgan_loss(pred, target_is_real)

    def penalty(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor | None:
        if self.lambda_gp == 0:
            return None
        return self.lambda_gp * gradient_penalty(discriminator, real, fake)

    def extra_repr(self) -> str:
        return f"lambda_gp={self.lambda_gp}"


@hookimpl
def unpaired_components():
    kind = "adversarial_loss"
    return [
        Component(kind, "lsgan", LSGANLoss),
        Component(kind, "bce", BCEGANLoss),
        Component(kind, "hinge", HingeGANLoss),
        Component(kind, "wgan_gp", WGANGPLoss),
    ]
