"""U-Net generators of pix2pix (Isola et al., CVPR 2017), also offered by CycleGAN.

Matches ``UnetGenerator`` of the authors' pytorch-CycleGAN-and-pix2pix code. One difference: the
default norm here is ``"instance"`` (CycleGAN's choice) where pix2pix uses ``"batch"``; pass
``norm: batch`` for pix2pix's network.
"""

from __future__ import annotations

import torch
from torch import nn

from unpaired import Component, hookimpl

from .layers import check_image, norm_layer, per_sample, uses_bias, variant


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down 4x4 stride-2 conv, the inner ``submodule``, up 4x4 stride-2
    transposed conv; the input is concatenated to the output (skip connection).

    Shapes: (N, outer, H, W) -> (N, 2 * outer, H, W) for inner levels; the outermost level maps
    (N, in_channels, H, W) -> (N, out_channels, H, W) with Tanh and no skip.
    """

    def __init__(self, outer: int, inner: int, in_channels: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 norm: str = "instance", dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        norm_fn, bias = norm_layer(norm), uses_bias(norm)
        down = nn.Conv2d(in_channels or outer, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            layers = [down, submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif submodule is None:  # innermost: no norm at the 1x1 bottleneck
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias),
                      norm_fn(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, norm_fn(inner), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias),
                      norm_fn(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net generator with skip connections (Isola et al., CVPR 2017).

    ``num_downs`` stride-2 down-samplings take an input of side 2**num_downs to 1x1; channels go
    ngf, 2 ngf, 4 ngf, then 8 ngf for the remaining levels.

    Args:
        in_channels, out_channels: image channels in and out.
        num_downs: number of down-samplings (8 for 256x256, 7 for 128x128); at least 5.
        ngf: channels of the outermost conv layer.
        norm: ``"instance"`` (default here, as for CycleGAN), ``"batch"`` (pix2pix) or ``"none"``.
        dropout: Dropout(0.5) in the ``num_downs - 5`` innermost 8 ngf levels (pix2pix).

    Shapes: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1];
    H and W must be multiples of :attr:`size_divisor` = 2**num_downs. :attr:`per_sample` as
    for :class:`~unpaired_plugins.networks.resnet.ResnetGenerator`.

    Raises:
        ValueError: ``num_downs`` < 5 or unknown ``norm``; in ``forward``, before the forward
            pass, an input with the wrong channel count or a side not divisible by 2**num_downs.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8,
                 ngf: int = 64, norm: str = "instance", dropout: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5; got {num_downs}.")
        self.in_channels, self.size_divisor = in_channels, 2**num_downs
        self.name = f"unet_{self.size_divisor}"
        self.per_sample = per_sample(norm, dropout)
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm,
                                            dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(out_channels, ngf, in_channels, block,
                                             outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, self.size_divisor, self.name)
        return self.model(x)


unet_256 = variant(
    UnetGenerator, "unet_256", "U-Net generator with 8 down-samplings, for 256x256 inputs (pix2pix).", num_downs=8)

unet_128 = variant(
    UnetGenerator, "unet_128", "U-Net generator with 7 down-samplings, for 128x128 inputs (pix2pix).", num_downs=7)

@hookimpl
def unpaired_components():
    return [
        Component("generator", "unet_256", unet_256),
        Component("generator", "unet_128", unet_128),
        Component("generator", "unet", UnetGenerator,
                  "U-Net generator with num_downs down-samplings (Isola et al. 2017)."),
    ]
