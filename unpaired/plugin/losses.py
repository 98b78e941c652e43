"""Core loss interfaces that loss plugins implement.

An adversarial loss owns the calls to its discriminator, so losses that need more than the
discriminator's outputs (the WGAN-GP gradient penalty) fit the same interface, and multi-scale
discriminators (a list of logit maps) are averaged over scales in one place.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn


def as_scales(pred: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """A discriminator's output as a list of logit maps, one per scale."""
    return list(pred) if isinstance(pred, (list, tuple)) else [pred]


class AdversarialLoss(nn.Module):
    """Base class of adversarial losses (kind ``adversarial_loss``).

    Subclasses define :meth:`criterion` on one logit map; this class averages it over the
    scales of a multi-scale discriminator and adds :meth:`penalty` on the discriminator side.

    The discriminator-side loss is ``ℓ(D(real), real) + ℓ(D(fake), fake)``; the reference's factor
    0.5 (Zhu et al., ICCV 2017, section 4) is the loss term's ``weight`` in the recipe.
    """

    def criterion(self, pred: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        """Scalar loss of one logit map ``pred`` (N, 1, h, w) against the real or fake target."""
        raise NotImplementedError

    def penalty(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor | None:
        """Extra discriminator-side term (e.g. a gradient penalty); ``None`` for none."""
        return None

    def _mean(self, pred, target_is_real: bool, for_discriminator: bool) -> Tensor:
        scales = as_scales(pred)
        return sum(self.criterion(p, target_is_real, for_discriminator) for p in scales) / len(scales)

    def generator_loss(self, discriminator: nn.Module, fake: Tensor) -> Tensor:
        """Loss of the generator that made ``fake`` (N, C, H, W): D should call it real."""
        return self._mean(discriminator(fake), True, False)

    def discriminator_loss(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """Loss of ``discriminator`` on ``real`` and (detached) ``fake`` images, (N, C, H, W)."""
        loss = self._mean(discriminator(real), True, True) + self._mean(discriminator(fake), False, True)
        extra = self.penalty(discriminator, real, fake)
        return loss if extra is None else loss + extra

    def forward(self, discriminator: nn.Module, fake: Tensor) -> Tensor:
        return self.generator_loss(discriminator, fake)


def check_same_shape(input: Tensor, target: Tensor, what: str) -> None:
    """Raise ValueError naming ``what`` when two images differ in shape (channels first)."""
    if input.shape != target.shape:
        hint = ""
        if input.ndim == 4 and target.ndim == 4 and input.shape[1] != target.shape[1]:
            hint = f" ({input.shape[1]} vs {target.shape[1]} channels)"
        raise ValueError(
            f"{what}: input {tuple(input.shape)} and target {tuple(target.shape)} differ{hint}; "
            "both must be (N, C, H, W) with equal shapes."
        )
