"""Random patch masking as a graph op: the input of UVCGAN2's generator pretraining, masked
inpainting (Torbunov et al., "UVCGAN v2", 2023; the authors' code LS4GAN/uvcgan2,
``torch/image_masking.py``: ``ImagePatchRandomMasking``, and ``cgan/simple_autoencoder.py``).

The image is cut into square patches; each patch of each image is hidden independently with
probability ``fraction`` (a Bernoulli draw per patch, not a fixed count), the same patches in
every channel. Hidden pixels take ``fill``: black, -1 in this framework's [-1, 1] range (the
authors multiply [0, 1] images by the mask, so theirs are 0, black too). The pretraining loss
compares the generator's output on the masked image with the whole unmasked image.

Recipe::

    masked_A: {op: patch_mask, input: real_A, args: {patch_size: 4, fraction: 0.4}}
"""

from __future__ import annotations

import torch
from torch import Tensor

from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.registry import Component

__all__ = ["PatchMask"]


class PatchMask:
    """``patch_mask``: images (N, C, H, W) in [-1, 1] with random square patches set to ``fill``.

    Args:
        patch_size: the patches' side in pixels (the authors': 32 at 256 pixels, an 8 x 8 grid);
            H and W must be multiples of it.
        fraction: each patch's probability of being hidden, in [0, 1] (0.4).
        fill: the hidden pixels' value (-1, black).

    Raises:
        ValueError: ``patch_size`` below 1 or ``fraction`` outside [0, 1]; in a call, an image
            whose height or width is not a multiple of ``patch_size``.
    """

    def __init__(self, patch_size: int = 32, fraction: float = 0.4, fill: float = -1.0):
        if isinstance(patch_size, bool) or int(patch_size) != patch_size or patch_size < 1:
            raise ValueError(f"patch_size must be an integer >= 1, got {patch_size!r}")
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
        self.patch_size, self.fraction, self.fill = int(patch_size), float(fraction), float(fill)

    def mask(self, shape, generator: torch.Generator) -> Tensor:
        """The kept pixels, (N, 1, H, W) bool on the CPU: False in hidden patches."""
        n, _, h, w = shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"patch_mask: images of {h}x{w} pixels do not divide into {p}x{p} patches; crop to a "
                             f"multiple of {p} or change patch_size")
        keep = torch.rand((n, 1, h // p, w // p), generator=generator) > self.fraction
        return keep.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)

    def __call__(self, x: Tensor, networks: dict, generator: torch.Generator) -> Tensor:
        if x.is_meta:  # a dry run (recipe check): the shape is what counts
            return torch.empty_like(x)
        keep = self.mask(x.shape, generator).to(x.device)
        return torch.where(keep, x, torch.full_like(x, self.fill))


@hookimpl
def unpaired_components():
    return [Component("graph_op", "patch_mask", PatchMask)]
