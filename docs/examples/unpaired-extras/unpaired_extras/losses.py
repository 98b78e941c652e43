"""A consistency loss (kind ``consistency_loss``): the Charbonnier penalty."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CharbonnierLoss(nn.Module):
    """Charbonnier (pseudo-Huber) loss, mean(sqrt((input - target)^2 + eps^2)); eps = 1e-3.

    A smooth, everywhere-differentiable L1: close to ``|x - y|`` for ``|x - y| >> eps`` and
    quadratic near zero. Charbonnier, Blanc-Féraud, Aubert & Barlaud, "Two deterministic
    half-quadratic regularization algorithms for computed imaging", ICIP 1994; used as the
    reconstruction loss of LapSRN (Lai, Huang, Ahuja & Yang, CVPR 2017).

    ``forward(input, target)``: images (N, C, H, W) in [-1, 1] of equal shape -> scalar tensor,
    in [eps, sqrt(4 + eps^2)] for images in [-1, 1]; identical images give ``eps`` (not zero).
    Computed in float32 even under bf16/fp16 autocast.

    Args:
        eps: the smoothing constant (default 1e-3), > 0.

    Raises:
        ValueError: ``eps`` not positive; (in ``forward``) the two shapes differ.
    """

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        if not eps > 0:
            raise ValueError(f"charbonnier: eps must be > 0, got {eps}.")
        self.eps = float(eps)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        if input.shape != target.shape:
            raise ValueError(
                f"charbonnier loss: input {tuple(input.shape)} and target {tuple(target.shape)} "
                "differ; both must be (N, C, H, W) with equal shapes."
            )
        diff = input.float() - target.float()
        return torch.sqrt(diff * diff + self.eps**2).mean()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
