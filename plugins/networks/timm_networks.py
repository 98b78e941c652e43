"""Networks built on any timm backbone (``timm.create_model(..., features_only=True)``).

``timm_unet`` is a U-Net generator whose encoder is the backbone (the U-Net idea of Ronneberger
et al., MICCAI 2015, as used by pix2pix, Isola et al., CVPR 2017); ``timm_features`` is a
discriminator with 1x1 logit heads on the backbone's deepest feature maps (a PatchGAN-like map,
Isola et al. 2017). Weights are never downloaded unless ``pretrained: true`` is asked for; note
that a recipe's ``init`` re-initialises the whole network, pretrained backbone included.

Most timm backbones use BatchNorm: in training, a batch of 1 fails when the deepest map is 1x1,
so use inputs of at least twice the backbone's reduction (64x64 for a reduction of 32).
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from unpaired import Component, hookimpl

from .layers import check_image, norm_layer, uses_bias


def _backbone(name: str, in_channels: int, pretrained: bool) -> nn.Module:
    try:
        return timm.create_model(name, features_only=True, pretrained=pretrained,
                                 in_chans=in_channels)
    except RuntimeError as err:
        raise ValueError(
            f"backbone: timm cannot build '{name}' with features_only ({err}). "
            "Pick a name from timm.list_models()."
        ) from err


def _conv_norm_relu(in_ch: int, out_ch: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode="reflect", bias=uses_bias(norm)),
        norm_layer(norm)(out_ch), nn.ReLU(True),
    )


class TimmUnet(nn.Module):
    """U-Net generator with a timm encoder and a light decoder.

    The decoder starts at the deepest feature map and, for each shallower one, upsamples (nearest)
    to its size, concatenates it, and applies 3x3 conv + norm + ReLU with as many channels as that
    feature map; a last stage upsamples to the input size, applies conv + norm + ReLU (``ngf``
    channels), then a 3x3 conv to ``out_channels`` + Tanh.

    Args:
        backbone: a timm model name that supports ``features_only`` (``timm.list_models()``).
        in_channels, out_channels: image channels in and out (any ``in_channels`` timm accepts).
        pretrained: load the backbone's pretrained weights (downloads them; off by default).
        ngf: channels of the full-resolution decoder stage.
        norm: decoder norm: ``"instance"``, ``"batch"`` or ``"none"`` (the backbone keeps its own).

    Shapes: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1]; H and W
    must be multiples of :attr:`size_divisor`, the backbone's largest reduction (32 for resnet18).

    Raises:
        ValueError: timm cannot build ``backbone`` with ``features_only``; unknown ``norm``; in
            ``forward``, an input with the wrong channel count or a side not divisible by
            ``size_divisor``.
    """

    def __init__(self, backbone: str = "resnet18", in_channels: int = 3, out_channels: int = 3,
                 pretrained: bool = False, ngf: int = 32, norm: str = "instance"):
        super().__init__()
        self.encoder = _backbone(backbone, in_channels, pretrained)
        channels = self.encoder.feature_info.channels()
        self.in_channels, self.name = in_channels, f"timm_unet({backbone})"
        self.size_divisor = max(self.encoder.feature_info.reduction())
        self.decoder = nn.ModuleList(
            _conv_norm_relu(deep + skip, skip, norm)
            for deep, skip in zip(channels[:0:-1], channels[-2::-1])
        )
        self.head = nn.Sequential(_conv_norm_relu(channels[0], ngf, norm),
                                  nn.Conv2d(ngf, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, self.size_divisor, self.name)
        *skips, y = self.encoder(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            y = block(torch.cat([F.interpolate(y, size=skip.shape[-2:]), skip], 1))
        return self.head(F.interpolate(y, size=x.shape[-2:]))


class TimmFeaturesDiscriminator(nn.Module):
    """Discriminator: a timm backbone with 1x1 conv logit heads on its deepest feature maps.

    One head on each of the ``num_maps`` deepest maps.

    Args:
        backbone: a timm model name that supports ``features_only``.
        in_channels: image channels.
        pretrained: load the backbone's pretrained weights (downloads them; off by default).
        num_maps: how many of the deepest feature maps get a head (1 to the number of maps).

    Shapes: (N, in_channels, H, W) -> logits (N, 1, H/r, W/r) with r the map's reduction (32 for
    resnet18's last map); with ``num_maps`` > 1, a list of such maps, finer first.

    Raises:
        ValueError: timm cannot build ``backbone`` with ``features_only``; ``num_maps`` outside
            1 to the backbone's number of feature maps.
    """

    def __init__(self, backbone: str = "resnet18", in_channels: int = 3,
                 pretrained: bool = False, num_maps: int = 1):
        super().__init__()
        self.encoder = _backbone(backbone, in_channels, pretrained)
        channels = self.encoder.feature_info.channels()
        if not 1 <= num_maps <= len(channels):
            raise ValueError(
                f"num_maps must be between 1 and {len(channels)} for {backbone}; got {num_maps}."
            )
        self.num_maps = num_maps
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in channels[-num_maps:])

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        feats = self.encoder(x)[-self.num_maps:]
        logits = [head(f) for head, f in zip(self.heads, feats)]
        return logits[0] if self.num_maps == 1 else logits


@hookimpl
def unpaired_components():
    return [
        Component("generator", "timm_unet", TimmUnet),
        Component("discriminator", "timm_features", TimmFeaturesDiscriminator),
    ]
