"""UNSB's Schrödinger-bridge losses (kind ``consistency_loss``): Kim, Kwon, Kim & Ye, "Unpaired
Image-to-Image Translation via Neural Schrödinger Bridge", ICLR 2024; the authors' code:
cyclomon/UNSB, ``models/sb_model.py`` (``compute_E_loss``, ``compute_G_loss``).

Both read the energy network E on pairs (x_t, x̂_1) of an image at time t and its translation,
concatenated along channels, for two independent samples of the batch (the second sample
real_A2 gives x'_t and x̂'_1): E(p, t, q) scores pair p against pair q (``pairs`` below):

- ``sb_energy`` (E's loss, its own step): ``−mean E(p, t, p) + L + L²`` with
  ``L = logsumexp(E(p, t, p'))`` over every output element: the contrastive (MINE-style)
  estimate of the pairs' mutual information, the square keeping it bounded. The translations are
  detached, as the authors'.
- ``sb`` (the generator's Schrödinger-bridge loss):
  ``−(T − t)/T · τ · (mean E(p, t, p) − logsumexp E(p, t, p')) + τ · mean((x_t − x̂_1)²)``,
  the entropy-regularised transport cost of the step from x_t to x̂_1.

A term reads the first pair as ``target`` (x_t) and ``input`` (x̂_1), the second pair and the
time steps from the step's images by the names in its args, and E from its ``networks``::

    sb: {consistency: sb, input: fake_B, target: x_t, networks: [E],
         args: {second_input: fake_B2, second_target: x_t2, time: t, tau: 0.01, num_timesteps: 5}}
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from unpaired import Component, hookimpl
from unpaired.plugin.losses import check_same_shape

__all__ = ["SBEnergyLoss", "SBLoss", "pair_scores"]


def pair_scores(energy: nn.Module, x_t: Tensor, x_1: Tensor, x2_t: Tensor, x2_1: Tensor, t: Tensor
                ) -> tuple[Tensor, Tensor]:
    """``(E(p, t, p), E(p, t, p'))`` for pairs ``p = x_t ‖ x_1`` and ``p' = x2_t ‖ x2_1`` (N, 2C, H, W)."""
    p, q = torch.cat([x_t, x_1], dim=1), torch.cat([x2_t, x2_1], dim=1)
    return energy(p, t, p), energy(p, t, q)


class _PairLoss(nn.Module):
    #: arguments that name values of the step the loss reads (made for it, like input and target)
    image_args = ("second_input", "second_target", "time")

    def __init__(self, second_input: str = "fake_B2", second_target: str = "x_t2", time: str = "t"):
        super().__init__()
        if not all(isinstance(n, str) and n for n in (second_input, second_target, time)):
            raise ValueError("second_input, second_target and time name images of the step.")
        self.second_input, self.second_target, self.time = second_input, second_target, time

    def _read(self, input: Tensor, target: Tensor, networks: Mapping, images: Mapping):
        missing = [n for n in (self.second_input, self.second_target, self.time) if n not in images]
        if missing:
            raise ValueError(f"{', '.join(missing)} (second_input / second_target / time) are not values of this "
                             "step; define them in the recipe's images.")
        if len(networks) != 1:
            raise ValueError(f"name the energy network as the term's only network, got {list(networks) or 'none'}.")
        x2_1, x2_t = images[self.second_input], images[self.second_target]
        check_same_shape(input, target, "sb loss")
        check_same_shape(x2_1, x2_t, "sb loss (second pair)")
        return next(iter(networks.values())), x2_1, x2_t, images[self.time].reshape(-1).long()


class SBEnergyLoss(_PairLoss):
    """UNSB's energy-network loss ``−mean E(p, t, p) + L + L²``, ``L = logsumexp E(p, t, p')`` (module
    docstring); the translations detached. ``forward(input=x̂_1, target=x_t, networks={E}, images)``
    -> scalar.

    Raises:
        ValueError: image names that are not strings; in ``forward``, missing images, shapes that
            differ, not exactly one network.
    """

    def forward(self, input: Tensor, target: Tensor, networks: Mapping, images: Mapping) -> Tensor:
        energy, x2_1, x2_t, t = self._read(input, target, networks, images)
        same, other = pair_scores(energy, target, input.detach(), x2_t, x2_1.detach(), t)
        lse = torch.logsumexp(other.reshape(-1), dim=0)
        return -same.mean() + lse + lse ** 2


class SBLoss(_PairLoss):
    """UNSB's Schrödinger-bridge loss for the generator (module docstring):
    ``−(T − t)/T · τ · (mean E(p, t, p) − logsumexp E(p, t, p')) + τ · mean((x_t − x̂_1)²)``.
    ``forward(input=x̂_1, target=x_t, networks={E}, images)`` -> scalar; with several time steps in
    the batch, (T − t)/T is their mean (UNSB's batch shares one t).

    Args:
        tau: the entropy τ (``--tau`` 0.01).
        num_timesteps: T (``--num_timesteps`` 5).

    Raises:
        ValueError: τ < 0 or T < 1, and as :class:`SBEnergyLoss`.
    """

    def __init__(self, tau: float = 0.01, num_timesteps: int = 5, second_input: str = "fake_B2",
                 second_target: str = "x_t2", time: str = "t"):
        super().__init__(second_input, second_target, time)
        if not float(tau) >= 0 or int(num_timesteps) < 1:
            raise ValueError(f"tau must be >= 0 and num_timesteps >= 1, got {tau!r}, {num_timesteps!r}")
        self.tau, self.num_timesteps = float(tau), int(num_timesteps)

    def forward(self, input: Tensor, target: Tensor, networks: Mapping, images: Mapping) -> Tensor:
        energy, x2_1, x2_t, t = self._read(input, target, networks, images)
        same, other = pair_scores(energy, target, input, x2_t, x2_1, t)
        mutual = same.mean() - torch.logsumexp(other.reshape(-1), dim=0)
        remaining = ((self.num_timesteps - t.float()) / self.num_timesteps).mean()
        return -remaining * self.tau * mutual + self.tau * torch.mean((target - input) ** 2)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, num_timesteps={self.num_timesteps}"


@hookimpl
def unpaired_components():
    return [Component("consistency_loss", "sb_energy", SBEnergyLoss), Component("consistency_loss", "sb", SBLoss)]
