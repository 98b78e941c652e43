"""StarGAN v2's networks (Choi et al., "StarGAN v2: Diverse Image Synthesis for Multiple Domains",
CVPR 2020; the authors' code: clovaai/stargan-v2, ``core/model.py``).

- ``stargan_generator``: G(x, s), an encoder of down-sampling residual blocks with instance norm and
  a decoder of AdaIN residual blocks whose every normalisation is modulated by the style code s.
- ``stargan_mapping``: M(z, y), a latent code z (N, latent_dim) to the style code (N, style_dim) of
  domain y (N,): a shared MLP and one head per domain.
- ``stargan_style_encoder``: E(x, y), the style code of image x in domain y: shared residual blocks,
  one linear head per domain.
- ``stargan_discriminator``: D(x, y), a logit (N,) per image for its domain y: the encoder's body
  with one output per domain (a multi-task discriminator).

The layers, their order and their names are the authors' (a state dict of their networks loads
into these); parameter counts equal theirs (``tests/test_stargan.py``, counted on their code).
Two arguments are ours, both defaulting to the authors' networks: ``in_channels`` (their networks
read RGB; Fashion-MNIST is grey) and ``base_dim`` (their first layer is ``2**14 // img_size`` wide,
512 at 32 pixels: far more than a CPU trains in minutes). The high-pass skip connections of the
CelebA-HQ setting (``w_hpf > 0``) need face masks from a FAN landmark network, which is not shipped:
``w_hpf`` builds the extra block (so the counts match) but the forward pass takes no masks.
Initialisation is the recipe's (the authors use He init: ``init: kaiming`` with bias 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.registry import Component


def _check_size(img_size: int) -> None:
    if img_size < 8 or img_size & (img_size - 1):
        raise ValueError(f"img_size: StarGAN v2's networks halve the image to 4 pixels, so it must be a power of 2 of "
                         f"at least 8; got {img_size} (resize the data to one, e.g. load_size 32 for 28-pixel images)")


def _first_width(img_size: int, base_dim: int | None) -> int:
    return base_dim if base_dim else 2 ** 14 // img_size


class ResBlk(nn.Module):
    """A pre-activation residual block, optionally instance-normalised and average-pool down-sampling;
    output ``(shortcut + residual) / sqrt(2)`` (unit variance)."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False):
        super().__init__()
        self.actv = nn.LeakyReLU(0.2)
        self.normalize, self.downsample = normalize, downsample
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.learned_sc:
            x = self.conv1x1(x)
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _residual(self, x: Tensor) -> Tensor:
        if self.normalize:
            x = self.norm1(x)
        x = self.conv1(self.actv(x))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(self.actv(x))

    def forward(self, x: Tensor) -> Tensor:
        return (self._shortcut(x) + self._residual(x)) / math.sqrt(2)


class AdaIN(nn.Module):
    """Adaptive instance normalisation: ``(1 + gamma(s)) * IN(x) + beta(s)`` (Huang & Belongie, 2017)."""

    def __init__(self, style_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        h = self.fc(s)[:, :, None, None]
        gamma, beta = torch.chunk(h, chunks=2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """A residual block whose normalisations are AdaIN, optionally up-sampling (nearest, 2x)."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int = 64, w_hpf: int = 0, upsample: bool = False):
        super().__init__()
        self.w_hpf, self.upsample = w_hpf, upsample
        self.actv = nn.LeakyReLU(0.2)
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv1x1(x) if self.learned_sc else x

    def _residual(self, x: Tensor, s: Tensor) -> Tensor:
        x = self.actv(self.norm1(x, s))
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv1(x)
        return self.conv2(self.actv(self.norm2(x, s)))

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        out = self._residual(x, s)
        if self.w_hpf == 0:  # with high-pass skips (faces) the authors drop the shortcut
            out = (out + self._shortcut(x)) / math.sqrt(2)
        return out


class StarGANGenerator(nn.Module):
    """G(x, s): images (N, C, H, W) in [-1, 1] and style codes (N, style_dim) -> images (N, C, H, W).

    Args:
        img_size: the training size, a power of 2 (decides the depth: log2(img_size) - 4 down-samplings).
        style_dim: the style code's size (64 in the paper).
        max_conv_dim: the widest layer (512).
        w_hpf: > 0 adds the CelebA-HQ setting's extra block (no masks: see the module docstring).
        in_channels: image channels (3 in the authors' code).
        base_dim: the first layer's width (default the authors' ``2**14 // img_size``).

    Raises:
        ValueError: ``img_size`` not a power of 2 of at least 8.
    """

    def __init__(self, img_size: int = 256, style_dim: int = 64, max_conv_dim: int = 512, w_hpf: int = 0,
                 in_channels: int = 3, base_dim: int | None = None):
        super().__init__()
        _check_size(img_size)
        self.in_channels = self.out_channels = in_channels
        dim_in = _first_width(img_size, base_dim)
        self.img_size = img_size
        self.from_rgb = nn.Conv2d(in_channels, dim_in, 3, 1, 1)
        self.encode, self.decode = nn.ModuleList(), nn.ModuleList()
        self.to_rgb = nn.Sequential(nn.InstanceNorm2d(dim_in, affine=True), nn.LeakyReLU(0.2),
                                    nn.Conv2d(dim_in, in_channels, 1, 1, 0))
        repeat_num = int(math.log2(img_size)) - 4 + (1 if w_hpf > 0 else 0)
        dim_out = dim_in
        for _ in range(repeat_num):  # down-sampling blocks, mirrored by up-sampling ones
            dim_out = min(dim_in * 2, max_conv_dim)
            self.encode.append(ResBlk(dim_in, dim_out, normalize=True, downsample=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_in, style_dim, w_hpf=w_hpf, upsample=True))
            dim_in = dim_out
        for _ in range(2):  # bottleneck blocks
            self.encode.append(ResBlk(dim_out, dim_out, normalize=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_out, style_dim, w_hpf=w_hpf))
        #: translation needs sides divisible by this (the down-samplings)
        self.size_divisor = 2 ** repeat_num

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        x = self.from_rgb(x)
        for block in self.encode:
            x = block(x)
        for block in self.decode:
            x = block(x, s)
        return self.to_rgb(x)


def _pick(out: Tensor, y: Tensor) -> Tensor:
    """Row n of ``out`` (N, K, ...) at domain ``y[n]``: (N, ...)."""
    return out[torch.arange(out.shape[0], device=out.device), y.long()]


class StarGANMapping(nn.Module):
    """M(z, y): latent codes (N, latent_dim) and domains (N,) int -> style codes (N, style_dim).

    A shared MLP of 4 layers of width ``hidden_dim`` (512), then one 4-layer head per domain.
    """

    def __init__(self, latent_dim: int = 16, style_dim: int = 64, num_domains: int = 2, hidden_dim: int = 512):
        super().__init__()
        layers = [nn.Linear(latent_dim, hidden_dim), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                          nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, style_dim))
            for _ in range(num_domains))
        self.latent_dim, self.num_domains = latent_dim, num_domains

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = self.shared(z)
        return _pick(torch.stack([head(h) for head in self.unshared], dim=1), y)


def _body(img_size: int, in_channels: int, max_conv_dim: int, base_dim: int | None) -> tuple[list[nn.Module], int]:
    """The style encoder's and the discriminator's shared body: down to 1 pixel, and its width."""
    _check_size(img_size)
    dim_in = _first_width(img_size, base_dim)
    blocks: list[nn.Module] = [nn.Conv2d(in_channels, dim_in, 3, 1, 1)]
    dim_out = dim_in
    for _ in range(int(math.log2(img_size)) - 2):
        dim_out = min(dim_in * 2, max_conv_dim)
        blocks.append(ResBlk(dim_in, dim_out, downsample=True))
        dim_in = dim_out
    blocks += [nn.LeakyReLU(0.2), nn.Conv2d(dim_out, dim_out, 4, 1, 0), nn.LeakyReLU(0.2)]
    return blocks, dim_out


class StarGANStyleEncoder(nn.Module):
    """E(x, y): images (N, C, H, W) in [-1, 1] and domains (N,) -> style codes (N, style_dim).

    Args: as :class:`StarGANGenerator`, and ``num_domains`` (one linear head each).
    """

    def __init__(self, img_size: int = 256, style_dim: int = 64, num_domains: int = 2, max_conv_dim: int = 512,
                 in_channels: int = 3, base_dim: int | None = None):
        super().__init__()
        blocks, dim_out = _body(img_size, in_channels, max_conv_dim, base_dim)
        self.shared = nn.Sequential(*blocks)
        self.unshared = nn.ModuleList(nn.Linear(dim_out, style_dim) for _ in range(num_domains))
        self.in_channels, self.num_domains = in_channels, num_domains  # the check compares it to the data's

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.shared(x).flatten(1)
        return _pick(torch.stack([head(h) for head in self.unshared], dim=1), y)


class StarGANDiscriminator(nn.Module):
    """D(x, y): images (N, C, H, W) in [-1, 1] and domains (N,) -> logits (N,), one per image for its
    domain (one output per domain, indexed by the label).

    Args: as :class:`StarGANStyleEncoder`.
    """

    def __init__(self, img_size: int = 256, num_domains: int = 2, max_conv_dim: int = 512, in_channels: int = 3,
                 base_dim: int | None = None):
        super().__init__()
        blocks, dim_out = _body(img_size, in_channels, max_conv_dim, base_dim)
        blocks.append(nn.Conv2d(dim_out, num_domains, 1, 1, 0))
        self.main = nn.Sequential(*blocks)
        self.in_channels, self.num_domains = in_channels, num_domains

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return _pick(self.main(x).flatten(1), y)


@hookimpl
def unpaired_components():
    return [
        Component("generator", "stargan_generator", StarGANGenerator),
        Component("generator", "stargan_mapping", StarGANMapping),
        Component("generator", "stargan_style_encoder", StarGANStyleEncoder),
        Component("discriminator", "stargan_discriminator", StarGANDiscriminator),
    ]
