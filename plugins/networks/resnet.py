"""ResNet generators: CycleGAN's default (Zhu et al., ICCV 2017), after Johnson et al., ECCV 2016.

Matches ``ResnetGenerator`` of the authors' pytorch-CycleGAN-and-pix2pix code layer for layer:
11,378,179 parameters with 9 blocks and 7,837,699 with 6 (ngf=64, 3 -> 3 channels, instance norm).
"""

from __future__ import annotations

import torch
from torch import nn

from unpaired import Component, hookimpl

from .antialias import Downsample, Upsample
from .layers import check_image, norm_layer, per_sample, padding, uses_bias, variant


class ResnetBlock(nn.Module):
    """Residual block ``x + conv_block(x)``, keeping shape (N, dim, H, W).

    ``conv_block``: pad 1, 3x3 conv, norm, ReLU, [Dropout(0.5)], pad 1, 3x3 conv, norm.

    Raises:
        ValueError: unknown ``norm`` or ``padding_type``.
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False,
                 padding_type: str = "reflect"):
        super().__init__()
        norm_fn, bias = norm_layer(norm), uses_bias(norm)
        pad, p = padding(padding_type, 1)
        layers = [*pad, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm_fn(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        pad, p = padding(padding_type, 1)
        layers += [*pad, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm_fn(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """ResNet generator (Zhu et al., ICCV 2017; Johnson et al., ECCV 2016).

    Reflection pad 3 + 7x7 conv (ngf) + norm + ReLU; two stride-2 3x3 convs doubling channels;
    ``n_blocks`` residual blocks; two stride-2 3x3 transposed convs halving channels; reflection
    pad 3 + 7x7 conv to ``out_channels`` + Tanh.

    With ``antialias`` / ``antialias_up`` it is CUT's default generator (taesungp/
    contrastive-unpaired-translation ``ResnetGenerator``; Zhang, ICML 2019): each down-sampling
    conv keeps stride 1 and is followed by a blur-pool :class:`~.antialias.Downsample`, each
    transposed conv becomes a blur :class:`~.antialias.Upsample` then a 3x3 conv. Same parameter
    count, the same ``model.<i>`` layout as the authors' (their state dicts load).

    Args:
        in_channels, out_channels: image channels in and out.
        ngf: channels of the first conv layer.
        n_blocks: residual blocks at 1/4 resolution (the paper: 6 for 128x128, 9 for 256x256+).
        norm: ``"instance"`` (CycleGAN), ``"batch"`` or ``"none"``.
        dropout: Dropout(0.5) inside each residual block.
        padding_type: ``"reflect"``, ``"replicate"`` or ``"zero"`` inside the residual blocks.
        antialias: blur-pool down-sampling (CUT's default; False: its ``--no_antialias``).
        antialias_up: blur up-sampling + conv (CUT's default; False: its ``--no_antialias_up``).

    Shapes: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1];
    H and W must be multiples of :attr:`size_divisor` (4). :attr:`per_sample` (each output
    depends on its own input only: no batch norm, no dropout) lets the executor batch passes.

    Raises:
        ValueError: unknown ``norm`` or ``padding_type``; in ``forward``, an input with the wrong
            channel count or a side not divisible by 4.
    """

    size_divisor = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                 n_blocks: int = 9, norm: str = "instance", dropout: bool = False,
                 padding_type: str = "reflect", antialias: bool = False, antialias_up: bool = False):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0; got {n_blocks}.")
        self.in_channels, self.name = in_channels, f"resnet_{n_blocks}blocks"
        self.per_sample = per_sample(norm, dropout)
        norm_fn, bias = norm_layer(norm), uses_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                  norm_fn(ngf), nn.ReLU(True)]
        for mult in (1, 2):  # downsample: ngf -> 2 ngf -> 4 ngf
            c = ngf * mult * 2
            layers += [nn.Conv2d(ngf * mult, c, 3, stride=1 if antialias else 2, padding=1, bias=bias),
                       norm_fn(c), nn.ReLU(True), *([Downsample(c)] if antialias else [])]
        layers += [ResnetBlock(ngf * 4, norm, dropout, padding_type) for _ in range(n_blocks)]
        for mult in (4, 2):  # upsample: 4 ngf -> 2 ngf -> ngf
            c = ngf * mult
            layers += ([Upsample(c), nn.Conv2d(c, c // 2, 3, padding=1, bias=bias)] if antialias_up else
                       [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)])
            layers += [norm_fn(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, self.size_divisor, self.name)
        return self.model(x)


resnet_9blocks = variant(
    ResnetGenerator, "resnet_9blocks",
    "ResNet generator with 9 residual blocks, for 256x256 and larger (CycleGAN default).", n_blocks=9)

resnet_6blocks = variant(
    ResnetGenerator, "resnet_6blocks",
    "ResNet generator with 6 residual blocks, for 128x128 (CycleGAN paper).", n_blocks=6)

@hookimpl
def unpaired_components():
    return [
        Component("generator", "resnet_9blocks", resnet_9blocks),
        Component("generator", "resnet_6blocks", resnet_6blocks),
        Component("generator", "resnet", ResnetGenerator,
                  "ResNet generator with n_blocks residual blocks (Zhu et al. 2017)."),
    ]
