"""PatchGAN discriminators: pix2pix's (Isola et al., CVPR 2017), used by CycleGAN (Zhu et al.,
ICCV 2017), and the multi-scale discriminator of pix2pixHD (Wang et al., CVPR 2018).

``NLayerDiscriminator`` and ``PixelDiscriminator`` match the authors' pytorch-CycleGAN-and-pix2pix
code layer for layer: ``basic`` has 2,764,737 parameters and ``pixel`` 8,705 (ndf=64, 3 channels,
instance norm). Every discriminator outputs raw logits (no sigmoid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unpaired import Component, hookimpl

from .antialias import Downsample
from .layers import norm_layer, uses_bias, variant


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator with ``n_layers`` stride-2 conv layers (Isola et al., CVPR 2017).

    4x4 convs with padding 1 and LeakyReLU(0.2): C(ndf) stride 2 without norm, then n_layers - 1
    stride-2 convs doubling channels (capped at 8 ndf), one stride-1 conv, and a 1-channel
    stride-1 conv. With n_layers=3 each logit sees a 70x70 patch.

    Args:
        in_channels: image channels.
        ndf: channels of the first conv layer.
        n_layers: stride-2 conv layers (3 gives the 70x70 PatchGAN).
        norm: ``"instance"`` (CycleGAN), ``"batch"`` (pix2pix) or ``"none"``.
        antialias: CUT's default discriminator (taesungp/contrastive-unpaired-translation
            ``NLayerDiscriminator``; Zhang, ICML 2019): each stride-2 conv keeps stride 1 and is
            followed by a blur-pool :class:`~.antialias.Downsample`; the same parameters and
            logit map size. False (pix2pix, CycleGAN): CUT's ``--no_antialias``.

    Shapes: (N, in_channels, H, W) -> logits (N, 1, h, w); n_layers=3 and 256x256 give 30x30.

    Raises:
        ValueError: unknown ``norm``; ``n_layers`` < 1.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance", antialias: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1; got {n_layers}.")
        norm_fn, bias = norm_layer(norm), uses_bias(norm)
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=1 if antialias else 2, padding=1), nn.LeakyReLU(0.2, True),
                  *([Downsample(ndf)] if antialias else [])]
        channels = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            down = n < n_layers
            layers += [nn.Conv2d(channels, out, 4, stride=2 if down and not antialias else 1, padding=1, bias=bias),
                       norm_fn(out), nn.LeakyReLU(0.2, True), *([Downsample(out)] if down and antialias else [])]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN ("PixelGAN"): judges each pixel alone (Isola et al., CVPR 2017).

    1x1 convs: C(ndf) + LeakyReLU(0.2), C(2 ndf) + norm + LeakyReLU(0.2), C(1).

    Args:
        in_channels: image channels.
        ndf: channels of the first conv layer.
        norm: ``"instance"``, ``"batch"`` or ``"none"``.

    Shapes: (N, in_channels, H, W) -> logits (N, 1, H, W).

    Raises:
        ValueError: unknown ``norm``.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "instance"):
        super().__init__()
        norm_fn, bias = norm_layer(norm), uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm_fn(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiscaleDiscriminator(nn.Module):
    """Multi-scale PatchGAN: one per resolution, halved each time (Wang et al., pix2pixHD 2018).

    Scale k sees the input downsampled k times by avg_pool2d(3, stride 2, padding 1,
    count_include_pad=False); each scale has its own :class:`NLayerDiscriminator`.

    Args:
        in_channels, ndf, n_layers, norm: as for :class:`NLayerDiscriminator`.
        num_scales: number of discriminators / resolutions.

    Shapes: (N, in_channels, H, W) -> list of ``num_scales`` logit maps (N, 1, h_k, w_k), the
    full-resolution map first, coarser ones later.

    Raises:
        ValueError: unknown ``norm``; ``num_scales`` < 1 or ``n_layers`` < 1.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance", num_scales: int = 3):
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be at least 1; got {num_scales}.")
        self.scales = nn.ModuleList(
            NLayerDiscriminator(in_channels, ndf, n_layers, norm) for _ in range(num_scales)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits = []
        for k, disc in enumerate(self.scales):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            logits.append(disc(x))
        return logits


basic = variant(
    NLayerDiscriminator, "basic",
    "70x70 PatchGAN: NLayerDiscriminator with 3 layers (CycleGAN and pix2pix default).", n_layers=3)

@hookimpl
def unpaired_components():
    return [
        Component("discriminator", "basic", basic),
        Component("discriminator", "n_layers", NLayerDiscriminator),
        Component("discriminator", "pixel", PixelDiscriminator),
        Component("discriminator", "multiscale", MultiscaleDiscriminator),
    ]
