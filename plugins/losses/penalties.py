"""Gradient penalties as loss terms of their own (kind ``gradient_penalty``): a recipe names one
with its discriminator, images and weight, and may make it lazy with ``every:``::

    r1: {penalty: r1, discriminator: D, real: real, real_label: y_org, weight: 1}

The executor calls ``penalty(D, real, fake)`` with ``D`` a function of the image alone (the term's
``real_label`` bound), ``real`` and ``fake`` detached, in fp32 with autocast off: the double
backward of a penalty is where reduced precision fails first.

- ``r1``: ``½ mean_n ‖∇_x D(x_n)‖²`` on real images (Mescheder et al., "Which Training Methods for
  GANs do actually Converge?", ICML 2018, eq. 9 with γ the term's weight; StarGAN v2's ``r1_reg``,
  clovaai/stargan-v2 ``core/solver.py``, λ_reg 1).
- ``wgan_gp``: ``mean_n (‖∇D(x̂_n)‖ − 1)²`` on interpolates ``x̂ = ε real + (1 − ε) fake``
  (Gulrajani et al., NeurIPS 2017).
- ``zero_gp``: ``mean_n ‖∇D(x̂_n)‖²`` on the same interpolates, the zero-centred penalty
  (Thanh-Tung et al., ICLR 2019), the kind UVCGAN (Torbunov et al., WACV 2023) applies.
- ``gp``: either, with its ``center`` as an argument.

The gradient is that of the sum of every output element of every scale (a multi-scale D's list).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.losses import as_scales
from unpaired.plugin.registry import Component
from unpaired_plugins.losses.adversarial import gradient_penalty


class R1(nn.Module):
    """R1: ``½ mean_n ‖∇_x D(x_n)‖²`` over each real image's pixels (see the module docstring).

    forward(discriminator, real (N, C, H, W) in [-1, 1], fake=None) -> scalar, differentiable
    with respect to D's parameters.
    """

    def forward(self, discriminator, real: Tensor, fake: Tensor | None = None) -> Tensor:
        x = real.detach().requires_grad_(True)
        total = sum(p.sum() for p in as_scales(discriminator(x)))
        (grad,) = torch.autograd.grad(total, x, create_graph=True)
        return 0.5 * grad.pow(2).flatten(1).sum(1).mean()


class InterpolatedGP(nn.Module):
    """``mean_n (‖∇y_n(x̂)‖₂ − center)²`` on ``x̂ = ε real + (1 − ε) fake``, ``ε ~ U(0, 1)`` per sample
    or one for the batch (torch's generator: in every checkpoint's RNG state); ``y_n`` sums or
    averages sample n's outputs (:func:`unpaired_plugins.losses.adversarial.gradient_penalty`).

    UVCGAN2 (LS4GAN/uvcgan2 ``torch/gradient_penalty.py``, ``mix_type: real-fake``): ``center: 0,
    per_sample: false, reduction: mean, mix_queues: true``.

    Args:
        center: 1 for WGAN-GP, 0 for the zero-centred penalty.
        per_sample: one ε per sample (True) or one for the batch.
        reduction: ``sum`` or ``mean`` of each sample's output elements.
        mix_queues: give the discriminator ε as ``mix=``, so that its memory of past real and fake
            batches (UVCGAN2's queues) is mixed as the images are; needs ``per_sample: false``.

    Raises:
        ValueError: ``center`` negative, an unknown ``reduction``, ``mix_queues`` with
            ``per_sample``; at forward, no ``fake`` (the term must name one) or shapes that differ.
    """

    def __init__(self, center: float = 1.0, per_sample: bool = True, reduction: str = "sum", mix_queues: bool = False):
        super().__init__()
        if center < 0:
            raise ValueError(f"center: the target gradient norm, 0 or more; got {center}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction: 'sum' or 'mean', got {reduction!r}")
        if mix_queues and per_sample:
            raise ValueError("mix_queues: the queues' features belong to no sample of the batch; mixing them takes one "
                             "weight for the batch: set per_sample: false")
        self.center, self.per_sample, self.reduction, self.mix_queues = float(center), per_sample, reduction, mix_queues

    def forward(self, discriminator, real: Tensor, fake: Tensor | None = None) -> Tensor:
        if fake is None:
            raise ValueError("a penalty on interpolates needs the fake image too: set the term's fake")
        return gradient_penalty(discriminator, real, fake, center=self.center, per_sample=self.per_sample,
                                reduction=self.reduction, pass_mix=self.mix_queues)

    def extra_repr(self) -> str:
        return (f"center={self.center}, per_sample={self.per_sample}, reduction={self.reduction!r}, "
                f"mix_queues={self.mix_queues}")


def wgan_gp() -> InterpolatedGP:
    """WGAN-GP's penalty (centre 1)."""
    return InterpolatedGP(1.0)


def zero_gp() -> InterpolatedGP:
    """The zero-centred penalty on interpolates (centre 0)."""
    return InterpolatedGP(0.0)


@hookimpl
def unpaired_components():
    kind = "gradient_penalty"
    return [Component(kind, "r1", R1), Component(kind, "gp", InterpolatedGP), Component(kind, "wgan_gp", wgan_gp),
            Component(kind, "zero_gp", zero_gp)]
