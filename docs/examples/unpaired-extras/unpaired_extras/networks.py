"""A generator (kind ``generator``): a small residual network at full resolution."""

from __future__ import annotations

from torch import Tensor, nn


class _ResidualBlock(nn.Module):
    """``x + (3x3 conv, instance norm, ReLU, 3x3 conv, instance norm)(x)``, shape kept."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class TinyResnetGenerator(nn.Module):
    """Tiny residual generator: conv in, n_blocks residual blocks, conv out + Tanh; any size.

    No down- or upsampling, so any image size works (``size_divisor = 1``). A toy for small
    images and quick experiments, not a replacement for CycleGAN's ``resnet_9blocks``.

    Args:
        in_channels, out_channels: image channels in and out.
        ngf: feature channels throughout.
        n_blocks: residual blocks (0 allowed).

    Shapes: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1].

    Raises:
        ValueError: a non-positive channel count or negative ``n_blocks``; in ``forward``, an
            input that is not (N, in_channels, H, W).
    """

    size_divisor = 1

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 16, n_blocks: int = 2):
        super().__init__()
        if min(in_channels, out_channels, ngf) < 1 or n_blocks < 0:
            raise ValueError(
                f"tiny_resnet: need in_channels, out_channels, ngf >= 1 and n_blocks >= 0; got "
                f"in_channels={in_channels}, out_channels={out_channels}, ngf={ngf}, n_blocks={n_blocks}."
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.head = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(in_channels, ngf, 3), nn.InstanceNorm2d(ngf), nn.ReLU(True)
        )
        self.blocks = nn.Sequential(*[_ResidualBlock(ngf) for _ in range(n_blocks)])
        self.tail = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ngf, out_channels, 3), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"tiny_resnet expects images of shape (N, {self.in_channels}, H, W); got "
                f"{tuple(x.shape)}. Set the network's in_channels to the images' channel count."
            )
        return self.tail(self.blocks(self.head(x)))
