"""Shared building blocks of the network plugins: norm and padding choices, input checks.

Not a plugin: it registers nothing. The choices follow the authors' pytorch-CycleGAN-and-pix2pix
code (Zhu et al., ICCV 2017; Isola et al., CVPR 2017).
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from unpaired.errors import DataError

NORMS = ("instance", "batch", "none")
PADDINGS = ("reflect", "replicate", "zero")


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (Ulyanov et al., 2016) that runs as group norm on the CPU.

    Each (sample, channel) map of (N, C, H, W) is normalised by its own mean and biased variance
    over H x W, as torch's. Without running statistics, on a contiguous (NCHW) CPU tensor this is
    ``F.group_norm`` with one group per channel, the same values to rounding: torch's
    ``instance_norm`` runs batch norm over N·C channels of one sample instead, and that made the
    CycleGAN training step up to 13 % slower on the CPU (docs/performance.md). Other devices,
    channels_last (where group norm's CPU kernel is the slower), running statistics and unbatched
    input use torch's. Under autocast the output keeps the input's dtype, as torch's does.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if (input.device.type != "cpu" or input.ndim != 4 or self.track_running_stats
                or not input.is_contiguous()):
            return super().forward(input)
        return F.group_norm(input, input.shape[1], self.weight, self.bias, self.eps)


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """The norm layer constructor for ``norm``, called with a channel count.

    ``"instance"``: :class:`InstanceNorm2d` (affine=False, track_running_stats=False) as in CycleGAN;
    ``"batch"``: BatchNorm2d(affine=True) as in pix2pix; ``"none"``: Identity.

    Raises:
        ValueError: ``norm`` is not one of ``instance``, ``batch``, ``none``.
    """
    if norm == "instance":
        return functools.partial(InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "none":
        return nn.Identity  # ignores the channel count
    raise ValueError(f"norm: unknown value '{norm}'; accepted: {', '.join(NORMS)}.")


def uses_bias(norm: str) -> bool:
    """Whether convolutions before ``norm`` carry a bias: not before BatchNorm, whose affine
    shift makes a bias redundant; yes before InstanceNorm (no affine parameters) or no norm."""
    return norm != "batch"


def per_sample(norm: str, dropout: bool) -> bool:
    """Whether a network with ``norm`` and ``dropout`` makes each output sample from its own input
    only, so that passes may share one call (``train.batch_passes``): not with batch norm (batch
    statistics in training), not with dropout (a call's masks differ from two calls')."""
    return norm != "batch" and not dropout


def padding(padding_type: str, amount: int) -> tuple[list[nn.Module], int]:
    """Padding before a convolution: ``(layers, conv_padding)``.

    ``"reflect"`` and ``"replicate"`` give a padding layer and ``conv_padding = 0``; ``"zero"``
    gives no layer and ``conv_padding = amount`` (the convolution zero-pads).

    Raises:
        ValueError: ``padding_type`` is not one of ``reflect``, ``replicate``, ``zero``.
    """
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if padding_type == "zero":
        return [], amount
    raise ValueError(
        f"padding_type: unknown value '{padding_type}'; accepted: {', '.join(PADDINGS)}."
    )


def check_image(x: torch.Tensor, in_channels: int, size_divisor: int, name: str) -> None:
    """Check a generator's input before the forward pass.

    Args:
        x: images, expected (N, ``in_channels``, H, W) with H and W multiples of ``size_divisor``.
        name: the network's name for the message, e.g. ``"unet_256"``.

    Raises:
        ValueError: wrong number of dimensions or channels; DataError (a ValueError): a side
            not divisible by ``size_divisor``. The message says what was expected and what came.
    """
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"{name} expects images of shape (N, {in_channels}, H, W); got {tuple(x.shape)}. "
            f"Set the network's in_channels to the images' channel count."
        )
    h, w = x.shape[-2:]
    if h % size_divisor or w % size_divisor:  # the data's doing: a DataError, which training reports in one line
        crop = max(size_divisor, min(h, w) // size_divisor * size_divisor)
        raise DataError(
            f"{name} needs input height and width divisible by {size_divisor}; got {h}x{w}. "
            f"Resize or crop the images (e.g. crop_size: {crop}).",
            key=name, code="not-divisible",
        )


def variant(cls: type, name: str, doc: str, **fixed):
    """A named constructor of ``cls`` with ``fixed`` arguments set (e.g. ``n_blocks=9``).

    Its signature lists the remaining arguments of ``cls``, so the registry can check a recipe's
    ``args`` against them and suggest the closest name for a typo.
    """
    def make(**kwargs):
        return cls(**fixed, **kwargs)

    params = [p for n, p in inspect.signature(cls).parameters.items() if n not in fixed]
    make.__signature__ = inspect.Signature(params)
    make.__name__ = make.__qualname__ = name
    make.__doc__ = doc
    return make
