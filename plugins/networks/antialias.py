"""Anti-aliased down- and up-sampling (Zhang, "Making Convolutional Networks Shift-Invariant
Again", ICML 2019), as CUT's generators and UNSB's networks use them (the ``Downsample`` and
``Upsample`` of taesungp/contrastive-unpaired-translation ``models/networks.py``, repeated in
cyclomon/UNSB ``models/ncsn_networks.py``).

Both filter each channel with a fixed binomial kernel (``[1, 2, 1]`` or ``[1, 3, 3, 1]``, outer
product, normalised) kept as the buffer ``filt``, so a state dict of the authors' networks loads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Downsample", "Upsample", "binomial_filter"]

#: Binomial coefficients, the rows of Pascal's triangle, by filter size.
_ROWS = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}


def binomial_filter(size: int) -> Tensor:
    """The (size, size) blur kernel ``a aᵀ / sum`` of the binomial row ``a`` (CUT's ``get_filter``).

    Raises:
        ValueError: a size other than 1 to 5.
    """
    if size not in _ROWS:
        raise ValueError(f"binomial_filter: size is 1 to 5, got {size}")
    a = torch.tensor(_ROWS[size])
    k = a[:, None] * a[None, :]
    return k / k.sum()


class Downsample(nn.Module):
    """Blur, then keep every ``stride``-th pixel: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2)) for
    stride 2. Reflection padding, a 3x3 binomial kernel (CUT's defaults)."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2):
        super().__init__()
        self.stride = stride
        before, after = (filt_size - 1) // 2, math.ceil((filt_size - 1) / 2)
        self.pad = nn.ReflectionPad2d((before, after, before, after))
        self.register_buffer("filt", binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=self.stride, groups=x.shape[1])


class Upsample(nn.Module):
    """Zero-insertion up-sampling by ``stride`` followed by a 4x4 binomial blur (a fixed transposed
    convolution, CUT's ``Upsample``): (N, C, H, W) -> (N, C, 2H, 2W). Replication padding."""

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 2):
        super().__init__()
        self.stride, self.odd = stride, filt_size % 2 == 1
        self.pad_size = (filt_size - 1) // 2
        self.pad = nn.ReplicationPad2d(1)
        self.register_buffer("filt", (binomial_filter(filt_size) * stride ** 2)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv_transpose2d(self.pad(x), self.filt, stride=self.stride, padding=1 + self.pad_size,
                                 groups=x.shape[1])[:, :, 1:, 1:]
        return out if self.odd else out[:, :, :-1, :-1]
