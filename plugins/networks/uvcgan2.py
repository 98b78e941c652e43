"""UVCGAN v2's networks (Torbunov et al., "UVCGAN v2: An Improved Cycle-Consistent GAN for Unpaired
Image-to-Image Translation", 2023; the authors' code: LS4GAN/uvcgan2 at 871b2b9,
``uvcgan2/models/generator/vitmodnet.py``, ``uvcgan2/torch/layers/{modnet,transformer,unet,cnn,
batch_head}.py``, ``uvcgan2/base/networks.py``, ``uvcgan2/torch/spectr_norm.py``, as
``uvcgan2/cgan/uvcgan2.py`` builds them with ``scripts/afhq/train_cat2dog_translation.py``).

- ``uvcgan2_generator``: G(x) -> y, the ViT-ModNet: a U-Net whose encoder is plain convolution
  blocks, whose bottleneck is a pixel-wise vision transformer, and whose decoder convolutions are
  StyleGAN2-modulated (Karras et al., 2020: weight modulation and demodulation). The style is not
  an input: the transformer reads the bottleneck's pixels as tokens plus ``n_ext`` learned extra
  tokens, and the extra tokens' outputs, flattened, are the style vector ``mod`` (N, n_ext *
  features) that every decoder block maps to its modulation scales. G is therefore deterministic
  (no noise, one output per input), as the authors use it for translation.
- ``uvcgan2_discriminator``: D(x) -> patch logits, pix2pix's 70x70 PatchGAN body without its last
  convolution (``shrink_output: False``), spectrally normalised, followed by a "batch head" that
  sees the current batch's body features together with a queue of features of past batches
  (batch normalisation, or the batch standard deviation of ProGAN, over both; see
  :class:`UVCGAN2Discriminator`).

Names, order of construction and registration are the authors', so a state dict of theirs loads
into these (``ours.load_state_dict(theirs.state_dict())``, the discriminator's queues excepted:
they are ours) and the same seed with the same initialisation gives the same weights; the
parameter counts equal theirs (``tests/test_uvcgan2_networks.py``, measured on their code).
Defaults are the authors' AFHQ (and CelebA-HQ) translation settings: 3x256x256 images, generator
preset ``uvcgan2``, discriminator ``basic`` with head ``batch-norm-2d`` (CelebA-HQ: ``batch-stdev``).

Value range: the authors' data are ``ToTensor`` images in [0, 1] (no normalisation) and their
generator ends in a sigmoid (``activ_output: sigmoid``). For [-1, 1] data set ``activ_output:
tanh``. Activations named ``leakyrelu`` are ``nn.LeakyReLU()``, slope 0.01, as in the authors'
``get_activ_layer``; the PatchGAN body's are slope 0.2.

Initialisation (``init_gain``): the authors draw every Conv*/Linear weight (class name containing
"Conv" or "Linear", so also the attention's output projection, not its fused input projection)
from N(0, 0.02), biases 0, BatchNorm2d weights from N(1, 0.02), right after construction; the
discriminator's body is initialised and only then spectrally normalised, and its head keeps
PyTorch's default initialisation. Both networks do this themselves at construction
(``init_gain=None`` keeps PyTorch's defaults). The recipe's ``init: normal`` (gain 0.02) redoes the
same for the generator; for the discriminator it also re-initialises the head, so ``init: none``
keeps the authors' initialisation exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm
from unpaired_plugins.networks.layers import check_image

from unpaired.errors import DataError
from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.registry import Component

__all__ = ["UVCGAN2Discriminator", "UVCGAN2Generator", "authors_init"]


# --- building blocks ---------------------------------------------------------------------------


def _activ(name: str | None) -> nn.Module:
    """The authors' activation names (``get_activ_layer``); ``leakyrelu`` has slope 0.01."""
    table = {None: nn.Identity, "linear": nn.Identity, "gelu": nn.GELU, "relu": nn.ReLU,
             "leakyrelu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; one of {sorted(k for k in table if k)} or None")
    return table[name]()


def _norm2d(name: str | None, features: int) -> nn.Module:
    """The U-Net encoder blocks' normalisation (``get_norm_layer``; the authors' preset: None)."""
    if name is None:
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm2d(features)
    if name == "instance":
        return nn.InstanceNorm2d(features)
    raise ValueError(f"unknown modnet_norm {name!r}; one of None, 'batch', 'instance'")


def _norm1d(name: str | None, features: int) -> nn.Module:
    """The transformer's normalisation: ``layer`` (the preset) or None."""
    if name is None:
        return nn.Identity()
    if name == "layer":
        return nn.LayerNorm((features,))
    raise ValueError(f"unknown norm {name!r}; one of 'layer', None")


def _downsample(name: str, features: int) -> nn.Module:
    """x2 down-sampling that keeps the width (the preset: ``conv``, a 2x2 stride-2 convolution)."""
    if name == "conv":
        return nn.Conv2d(features, features, kernel_size=2, stride=2)
    if name == "conv3":
        return nn.Conv2d(features, features, kernel_size=3, stride=2, padding=1)
    if name == "avgpool":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if name == "maxpool":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    raise ValueError(f"unknown modnet_downsample {name!r}; one of 'conv', 'conv3', 'avgpool', 'maxpool'")


def _upsample(name: str, features: int) -> nn.Module:
    """x2 up-sampling that keeps the width (the preset: ``upsample-conv``, nearest x2 + 3x3 conv)."""
    if name == "upsample-conv":
        return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(features, features, kernel_size=3, padding=1))
    if name == "deconv":
        return nn.ConvTranspose2d(features, features, kernel_size=2, stride=2)
    if name == "upsample":
        return nn.Upsample(scale_factor=2)
    raise ValueError(f"unknown modnet_upsample {name!r}; one of 'upsample-conv', 'deconv', 'upsample'")


def _rezero(enabled: bool) -> nn.Parameter | float:
    """A ReZero gate (Bachlechner et al., 2020): a learned scalar starting at 0, else the constant 1."""
    return nn.Parameter(torch.zeros((1,))) if enabled else 1.0


def authors_init(module: nn.Module, gain: float = 0.02) -> None:
    """The authors' ``init_weights(net, {'name': 'normal', 'init_gain': gain})``, in place.

    Every submodule (children before parents, as ``nn.Module.apply``) whose class name contains
    "Conv" or "Linear" and that has a ``weight``: weight ~ N(0, gain), bias 0; every BatchNorm2d:
    weight ~ N(1, gain), bias 0. Must run before spectral normalisation (as theirs does).
    """

    def init_one(m: nn.Module) -> None:
        name = m.__class__.__name__
        if hasattr(m, "weight") and ("Conv" in name or "Linear" in name):
            nn.init.normal_(m.weight.data, 0.0, gain)
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.constant_(m.bias.data, 0.0)

    module.apply(init_one)


# --- generator: the modulated U-Net ------------------------------------------------------------


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution, as the authors write it: the input is scaled per channel
    by ``s`` instead of the weight (the same thing), the convolution (with its bias) applied, and
    with ``demod`` the result divided per output channel by ``sqrt(sum_{i,k} (s_i w_{o,i,k})^2 + eps)``.

    Shapes: x (N, C_in, H, W), s (N, C_in) -> (N, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 demod: bool = True, eps: float = 1e-6):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self._demod, self._eps = demod, eps

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        y = self.conv(x * s[:, :, None, None])
        if not self._demod:
            return y
        w_sq = self.conv.weight.square().sum(dim=(2, 3))  # (C_out, C_in)
        sigma_sq = s.square() @ w_sq.t()  # (N, C_out)
        return y * torch.rsqrt(sigma_sq + self._eps)[:, :, None, None]


class StyleBlock(nn.Module):
    """The modulation scales of one convolution: ``1 + re_alpha * affine_mod(mod)``.

    Shapes: mod (N, mod_features) -> (N, style_features). ``re_alpha`` (ReZero) starts at 0, so
    a fresh generator is unmodulated.
    """

    def __init__(self, mod_features: int, style_features: int, rezero: bool = True, bias: bool = True):
        super().__init__()
        self.affine_mod = nn.Linear(mod_features, style_features, bias=bias)
        self.re_alpha = _rezero(rezero)

    def forward(self, mod: Tensor) -> Tensor:
        return 1 + self.re_alpha * self.affine_mod(mod)


class ModNetBasicBlock(nn.Module):
    """Two modulated 3x3 convolutions, each followed by the activation.

    Shapes: x (N, in_features, H, W), mod (N, mod_features) -> (N, out_features, H, W).
    """

    def __init__(self, in_features: int, out_features: int, activ: str | None, mod_features: int,
                 mid_features: int | None = None, demod: bool = True, style_rezero: bool = True,
                 style_bias: bool = True):
        super().__init__()
        mid_features = out_features if mid_features is None else mid_features
        self.style_block1 = StyleBlock(mod_features, in_features, style_rezero, style_bias)
        self.conv_block1 = ModulatedConv2d(in_features, mid_features, 3, padding=1, demod=demod)
        self.activ1 = _activ(activ)
        self.style_block2 = StyleBlock(mod_features, mid_features, style_rezero, style_bias)
        self.conv_block2 = ModulatedConv2d(mid_features, out_features, 3, padding=1, demod=demod)
        self.activ2 = _activ(activ)

    def forward(self, x: Tensor, mod: Tensor) -> Tensor:
        y = self.activ1(self.conv_block1(x, self.style_block1(mod)))
        return self.activ2(self.conv_block2(y, self.style_block2(mod)))


class ModNetDecBlock(nn.Module):
    """A decoder step: up-sample x2, (times ``re_alpha`` with ``rezero``), concatenate the skip
    (up-sampled first), and a :class:`ModNetBasicBlock`.

    Shapes: x (N, C_in, H, W), skip (N, skip_features, 2H, 2W), mod -> (N, output_features, 2H, 2W).
    """

    def __init__(self, input_features: int, output_features: int, skip_features: int, mod_features: int,
                 activ: str | None, upsample: str, rezero: bool = True, demod: bool = True,
                 style_rezero: bool = True, style_bias: bool = True):
        super().__init__()
        self.upsample = _upsample(upsample, input_features)
        self.block = ModNetBasicBlock(skip_features + input_features, output_features, activ, mod_features,
                                      mid_features=input_features, demod=demod, style_rezero=style_rezero,
                                      style_bias=style_bias)
        self.re_alpha = _rezero(rezero)

    def forward(self, x: Tensor, skip: Tensor, mod: Tensor) -> Tensor:
        return self.block(torch.cat([self.re_alpha * self.upsample(x), skip], dim=1), mod)


class UnetBasicBlock(nn.Module):
    """(norm, 3x3 conv, activation) twice. Shapes: (N, in_features, H, W) -> (N, out_features, H, W)."""

    def __init__(self, in_features: int, out_features: int, activ: str | None, norm: str | None):
        super().__init__()
        self.block = nn.Sequential(
            _norm2d(norm, in_features), nn.Conv2d(in_features, out_features, 3, padding=1), _activ(activ),
            _norm2d(norm, out_features), nn.Conv2d(out_features, out_features, 3, padding=1), _activ(activ))

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UNetEncBlock(nn.Module):
    """An encoder step: a :class:`UnetBasicBlock` (its output is the skip), then down-sampling.

    Shapes: (N, in_features, H, W) -> ((N, features, H/2, W/2), skip (N, features, H, W)).
    """

    def __init__(self, in_features: int, features: int, activ: str | None, norm: str | None, downsample: str):
        super().__init__()
        self.downsample = _downsample(downsample, features)  # built first, as theirs (the seed's order)
        self.block = UnetBasicBlock(in_features, features, activ, norm)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        skip = self.block(x)
        return self.downsample(skip), skip


class ModNetBlock(nn.Module):
    """One level of the U-Net: ``conv`` (encoder step), ``inner_module`` (the next level, or the
    transformer at the bottom), ``deconv`` (modulated decoder step back to ``in_features``).

    Shapes: (N, in_features, H, W) -> ((N, in_features, H, W), mod (N, mod_features)); ``mod`` is
    the transformer's, passed up unchanged.
    """

    def __init__(self, in_features: int, features: int, activ: str | None, norm: str | None, downsample: str,
                 upsample: str, mod_features: int, rezero: bool = True, demod: bool = True,
                 style_rezero: bool = True, style_bias: bool = True):
        super().__init__()
        self.conv = UNetEncBlock(in_features, features, activ, norm, downsample)
        self.deconv = ModNetDecBlock(features, in_features, features, mod_features, activ, upsample,
                                     rezero, demod, style_rezero, style_bias)
        self.inner_module: nn.Module | None = None  # set by ModNet, registered after deconv (as theirs)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, skip = self.conv(x)
        y, mod = self.inner_module(y)
        return self.deconv(y, skip, mod), mod


class ModNet(nn.Module):
    """The modulated U-Net around a bottleneck that returns (features, mod).

    ``layer_input`` (3x3 conv to ``features_list[0]``, activation), the nested levels
    (``modnet``, ``modnet.inner_module``, ...; level i encodes to ``features_list[i]`` and halves the
    size), the bottleneck as the innermost level's ``inner_module``, ``layer_output`` (1x1 conv).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, features_list: Sequence[int], activ: str | None, norm: str | None, in_channels: int,
                 out_channels: int, downsample: str, upsample: str, mod_features: int, rezero: bool = False,
                 demod: bool = True, style_rezero: bool = True, style_bias: bool = True):
        super().__init__()
        self.layer_input = nn.Sequential(nn.Conv2d(in_channels, features_list[0], 3, padding=1), _activ(activ))
        self.layer_output = nn.Conv2d(features_list[0], out_channels, 1)
        self.levels: list[ModNetBlock] = []  # a plain list: the modules are registered once, nested
        width = features_list[0]
        for features in features_list:
            self.levels.append(ModNetBlock(width, features, activ, norm, downsample, upsample, mod_features,
                                           rezero, demod, style_rezero, style_bias))
            width = features
        for outer, inner in zip(self.levels, self.levels[1:]):
            outer.inner_module = inner
        self.modnet = self.levels[0]

    def set_bottleneck(self, module: nn.Module) -> None:
        self.levels[-1].inner_module = module

    def forward(self, x: Tensor) -> Tensor:
        y, _mod = self.modnet(self.layer_input(x))
        return self.layer_output(y)


# --- generator: the transformer bottleneck -----------------------------------------------------


class PositionWiseFFN(nn.Module):
    """Linear, activation, Linear. Shapes: (..., features) -> (..., features)."""

    def __init__(self, features: int, ffn_features: int, activ: str | None = "gelu"):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, ffn_features), _activ(activ), nn.Linear(ffn_features, features))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """A pre-norm transformer block with one ReZero scalar gating both branches:
    ``y = x + a * MHSA(norm1(x)); out = y + a * FFN(norm2(y))``, ``a = re_alpha`` (starts at 0).

    Written here rather than taken from timm: timm's ``Block`` names its layers ``attn.qkv``,
    ``attn.proj``, ``mlp.fc1``/``fc2`` (the authors: ``atten`` = ``nn.MultiheadAttention`` with
    ``in_proj_weight``/``out_proj``, ``ffn.net.0``/``2``) and gates each branch with its own
    per-channel LayerScale, not one shared scalar, so neither the state dict nor the arithmetic
    would be the authors'. The attention is ``nn.MultiheadAttention`` (sequence-first, as theirs).

    Shapes: (L, N, features) -> (L, N, features).
    """

    def __init__(self, features: int, ffn_features: int, n_heads: int, activ: str | None = "gelu",
                 norm: str | None = "layer", rezero: bool = True):
        super().__init__()
        self.norm1 = _norm1d(norm, features)
        self.atten = nn.MultiheadAttention(features, n_heads)
        self.norm2 = _norm1d(norm, features)
        self.ffn = PositionWiseFFN(features, ffn_features, activ)
        self.re_alpha = _rezero(rezero)

    def forward(self, x: Tensor) -> Tensor:
        y1 = self.norm1(x)
        y = x + self.re_alpha * self.atten(y1, y1, y1, need_weights=False)[0]
        return y + self.re_alpha * self.ffn(self.norm2(y))


class TransformerEncoder(nn.Module):
    """``n_blocks`` :class:`TransformerBlock`. Shapes: (N, L, features) -> (N, L, features)."""

    def __init__(self, features: int, ffn_features: int, n_heads: int, n_blocks: int, activ: str | None,
                 norm: str | None, rezero: bool = True):
        super().__init__()
        self.encoder = nn.Sequential(*[TransformerBlock(features, ffn_features, n_heads, activ, norm, rezero)
                                       for _ in range(n_blocks)])

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x.permute(1, 0, 2)).permute(1, 0, 2)


class FourierEmbedding(nn.Module):
    """Position embedding ``sin(projector([x_norm, y_norm]))``, coordinates scaled to [-1, 1]
    (Tancik et al., 2020, arXiv:2011.13775). Shapes: y, x (1, L) -> (1, L, features)."""

    def __init__(self, features: int, height: int, width: int):
        super().__init__()
        self.projector = nn.Linear(2, features)
        self._height, self._width = height, width

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        x_norm = 2 * x / (self._width - 1) - 1
        y_norm = 2 * y / (self._height - 1) - 1
        return torch.sin(self.projector(torch.stack((x_norm, y_norm), dim=2)))


class ViTInput(nn.Module):
    """Tokens (N, L, input_features) -> (N, L, features): each token concatenated with its position
    embedding and projected.

    The coordinates are the authors' (``torch.meshgrid(arange(W), arange(H))``, "ij" indexing,
    flattened): the token of pixel (h, w), index ``h * W + w``, gets x = index // H, y = index % H,
    i.e. (x, y) = (h, w) on square maps. The buffers ``x_const``, ``y_const`` are in the state dict,
    as theirs.
    """

    def __init__(self, input_features: int, embed_features: int, features: int, height: int, width: int):
        super().__init__()
        x, y = torch.meshgrid(torch.arange(width, dtype=torch.float32), torch.arange(height, dtype=torch.float32),
                              indexing="ij")
        self.register_buffer("x_const", x.reshape(1, -1))
        self.register_buffer("y_const", y.reshape(1, -1))
        self.embed = FourierEmbedding(embed_features, height, width)
        self.output = nn.Linear(embed_features + input_features, features)

    def forward(self, x: Tensor) -> Tensor:
        embed = self.embed(self.y_const, self.x_const).expand(x.shape[0], -1, -1)
        return self.output(torch.cat([embed, x], dim=2))


class ExtendedPixelwiseViT(nn.Module):
    """The bottleneck: every pixel a token, plus ``n_ext`` learned extra tokens (initialised N(0, 1))
    whose outputs are the style.

    Shapes: (N, C, h, w) -> ((N, C, h, w), mod (N, n_ext * features)).
    """

    def __init__(self, features: int, n_heads: int, n_blocks: int, ffn_features: int, embed_features: int,
                 activ: str | None, norm: str | None, image_shape: tuple[int, int, int], rezero: bool = True,
                 n_ext: int = 1):
        super().__init__()
        self.image_shape = tuple(image_shape)
        channels, height, width = image_shape
        self.trans_input = ViTInput(channels, embed_features, features, height, width)
        self.encoder = TransformerEncoder(features, ffn_features, n_heads, n_blocks, activ, norm, rezero)
        self.extra_tokens = nn.Parameter(torch.empty((1, n_ext, features)))
        nn.init.normal_(self.extra_tokens)
        self.trans_output = nn.Linear(features, channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        tokens = x.reshape(n, c, h * w).permute(0, 2, 1)  # (N, L, C), L = h * w
        y = torch.cat([self.trans_input(tokens), self.extra_tokens.expand(n, -1, -1)], dim=1)
        y = self.encoder(y)
        out = self.trans_output(y[:, : h * w]).permute(0, 2, 1).reshape(n, c, h, w)
        return out, y[:, h * w:].reshape(n, -1)


# --- the networks ------------------------------------------------------------------------------


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return int(h), int(w)


class UVCGAN2Generator(nn.Module):
    """G(x): images (N, in_channels, H, W) -> images (N, out_channels, H, W), (H, W) = ``image_size``,
    in the range of ``activ_output`` ([0, 1] for the authors' sigmoid, their data's range).

    The authors' ``ViTModNetGenerator`` (preset ``uvcgan2``). Encoder: ``layer_input`` and, per entry
    f of ``modnet_features_list``, two 3x3 convolutions to f channels and a 2x2 stride-2 convolution
    (256 pixels, [48, 96, 192, 384]: down to 384 x 16 x 16). Bottleneck: ``n_blocks`` transformer
    blocks over the 16 x 16 pixel tokens (projected with a Fourier position embedding to
    ``features``) plus ``n_ext`` extra tokens; it returns the pixels and the style ``mod`` = the
    extra tokens' outputs (N, n_ext * features). Decoder: per level, up-sampling, the skip
    concatenated, two modulated (and demodulated) 3x3 convolutions whose scales are
    ``1 + re_alpha * Linear(mod)``. Then ``layer_output`` (1x1) and ``activ_output``. There is no
    style or noise input: the style comes from the image itself, through the bottleneck.

    Args:
        in_channels, out_channels: image channels (the authors': 3 and 3; out defaults to in).
        image_size: H = W, or (H, W); fixed, as the transformer's position embedding is built for
            the bottleneck's size; a multiple of ``2 ** len(modnet_features_list)``.
        features, n_heads, n_blocks, ffn_features, embed_features: the transformer's width (384),
            heads (6), blocks (12), hidden FFN width (1536), position-embedding width (384).
        activ, norm: the transformer's activation ("gelu") and normalisation ("layer").
        modnet_features_list: the U-Net's widths per level ([48, 96, 192, 384]).
        modnet_activ, modnet_norm: the U-Net's activation ("leakyrelu", slope 0.01) and
            normalisation of its encoder blocks (None).
        modnet_downsample, modnet_upsample: "conv" (2x2, stride 2) and "upsample-conv".
        modnet_rezero: gate the decoder's up-sampled input by a ReZero scalar (False).
        modnet_demod: demodulate the decoder's convolutions (True).
        rezero: ReZero in the transformer blocks (True).
        activ_output: the final activation ("sigmoid"; "tanh" for [-1, 1] data; None).
        style_rezero, style_bias: the style maps' ReZero gate (True) and bias (True).
        n_ext: extra tokens, i.e. the style's size in units of ``features`` (1).
        init_gain: the authors' N(0, gain) initialisation at construction (0.02), None for PyTorch's.

    Raises:
        ValueError: an unknown activation, normalisation or sampling name; ``image_size`` not a
            multiple of ``2 ** len(modnet_features_list)`` or a bottleneck under 2 pixels a side;
            ``features`` not divisible by ``n_heads``. At forward: input of the wrong
            channels (ValueError) or size (DataError, a ValueError).
    """

    def __init__(self, in_channels: int = 3, out_channels: int | None = None,
                 image_size: int | Sequence[int] = 256, features: int = 384, n_heads: int = 6,
                 n_blocks: int = 12, ffn_features: int = 1536, embed_features: int = 384, activ: str = "gelu",
                 norm: str | None = "layer", modnet_features_list: Sequence[int] = (48, 96, 192, 384),
                 modnet_activ: str | None = "leakyrelu", modnet_norm: str | None = None,
                 modnet_downsample: str = "conv", modnet_upsample: str = "upsample-conv",
                 modnet_rezero: bool = False, modnet_demod: bool = True, rezero: bool = True,
                 activ_output: str | None = "sigmoid", style_rezero: bool = True, style_bias: bool = True,
                 n_ext: int = 1, init_gain: float | None = 0.02):
        super().__init__()
        h, w = _size(image_size)
        depth = len(modnet_features_list)
        self.size_divisor = 2 ** depth
        if depth < 1 or h % self.size_divisor or w % self.size_divisor or min(h, w) // self.size_divisor < 2:
            raise ValueError(f"image_size {h}x{w}: the U-Net halves it {depth} times, so each side must be a "
                             f"multiple of {self.size_divisor} and at least {2 * self.size_divisor}")
        if features % n_heads:
            raise ValueError(f"features ({features}) must be divisible by n_heads ({n_heads})")
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.image_size = (h, w)
        self.net = ModNet(list(modnet_features_list), modnet_activ, modnet_norm, in_channels, self.out_channels,
                          modnet_downsample, modnet_upsample, features * n_ext, modnet_rezero, modnet_demod,
                          style_rezero, style_bias)
        inner = (modnet_features_list[-1], h // self.size_divisor, w // self.size_divisor)
        self.net.set_bottleneck(ExtendedPixelwiseViT(features, n_heads, n_blocks, ffn_features, embed_features,
                                                     activ, norm, inner, rezero=rezero, n_ext=n_ext))
        self.output = _activ(activ_output)
        if init_gain is not None:
            authors_init(self, init_gain)

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, self.in_channels, self.size_divisor, "uvcgan2_generator")
        if tuple(x.shape[-2:]) != self.image_size:
            h, w = self.image_size
            raise DataError(f"uvcgan2_generator is built for {h}x{w} images (its transformer's position "
                            f"embedding is fixed); got {x.shape[-2]}x{x.shape[-1]}. Resize the images to {h}x{w} "
                            f"or set the network's image_size.", key="uvcgan2_generator", code="wrong-size")
        return self.output(self.net(x))


class NLayerBody(nn.Module):
    """pix2pix's PatchGAN without its last convolution (the authors' ``NLayerDiscriminator`` with
    ``shrink_output=False``): 4x4 convs, padding 1, LeakyReLU(0.2); C(ndf) stride 2 without norm,
    n_layers - 1 stride-2 convs doubling the width (up to ``max_mult * ndf``) and one stride-1 conv.

    Shapes: (N, C, H, W) -> (N, ndf * min(2**n_layers, max_mult), h, w); 256 -> 31 with 3 layers.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 max_mult: int = 8):
        super().__init__()
        norms = {"instance": lambda c: nn.InstanceNorm2d(c), "batch": lambda c: nn.BatchNorm2d(c),
                 "none": lambda c: nn.Identity()}
        if norm not in norms:
            raise ValueError(f"unknown norm {norm!r}; one of {sorted(norms)}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1; got {n_layers}")
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, max_mult)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2 if n < n_layers else 1, padding=1, bias=bias),
                       norms[norm](ndf * mult), nn.LeakyReLU(0.2)]
        self.model = nn.Sequential(*layers)
        self.out_features, self.n_layers = ndf * mult, n_layers

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        for n in range(1, self.n_layers + 2):
            stride = 2 if n <= self.n_layers else 1
            h, w = (h - 2) // stride + 1, (w - 2) // stride + 1
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class BatchStdev(nn.Module):
    """ProGAN's minibatch standard deviation (Karras et al., 2018): one extra channel holding the
    mean over (C, H, W) of ``sqrt(Var_batch + 1e-6)`` (biased variance).
    Shapes: (N, C, H, W) -> (N, C + 1, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        std = torch.sqrt(torch.var(x, dim=0, unbiased=False, keepdim=True) + 1e-6)
        return torch.cat((x, std.mean(dim=(1, 2, 3), keepdim=True).expand(x.shape[0], 1, *x.shape[2:])), dim=1)


class BatchHead2d(nn.Module):
    """The ``batch-norm-2d`` head: BatchNorm2d over the batch (and queue), 3x3 conv, activation,
    3x3 conv, output activation. Shapes: (B, C, h, w) -> (B, output_features, h, w)."""

    def __init__(self, input_features: int, mid_features: int | None = None, output_features: int | None = None,
                 activ: str | None = "relu", activ_output: str | None = None):
        super().__init__()
        mid_features = input_features if mid_features is None else mid_features
        output_features = mid_features if output_features is None else output_features
        self.norm = nn.BatchNorm2d(input_features)
        self.net = nn.Sequential(nn.Conv2d(input_features, mid_features, 3, padding=1), _activ(activ),
                                 nn.Conv2d(mid_features, output_features, 3, padding=1), _activ(activ_output))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.norm(x))


class BatchStdevHead(nn.Module):
    """The ``batch-stdev`` head: :class:`BatchStdev` over the batch (and queue), 3x3 conv on C + 1
    channels, activation, 3x3 conv, output activation. Shapes: (B, C, h, w) -> (B, out, h, w)."""

    def __init__(self, input_features: int, mid_features: int | None = None, output_features: int | None = None,
                 activ: str | None = "relu", activ_output: str | None = None):
        super().__init__()
        mid_features = input_features if mid_features is None else mid_features
        output_features = mid_features if output_features is None else output_features
        self.net = nn.Sequential(BatchStdev(), nn.Conv2d(input_features + 1, mid_features, 3, padding=1),
                                 _activ(activ), nn.Conv2d(mid_features, output_features, 3, padding=1),
                                 _activ(activ_output))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


_HEADS = {"batch-norm-2d": BatchHead2d, "batch-stdev": BatchStdevHead}
_QUEUES = ("real", "fake")


class UVCGAN2Discriminator(nn.Module):
    """D(x): images (N, in_channels, H, W) -> patch logits (N, 1, h, w) (31x31 at 256 pixels), no
    sigmoid (the authors train it with LSGAN's loss).

    ``_body`` (:class:`NLayerBody`, every conv spectrally normalised) maps the images to features
    (N, 512, 31, 31); ``_head`` maps features to logits, with statistics taken over the whole batch
    it is given: ``batch-norm-2d`` (AFHQ) batch-normalises, ``batch-stdev`` (CelebA-HQ) appends the
    batch's standard deviation. The head is given the current features concatenated with a queue
    of body features of past batches, and only the current rows of its output are returned (the
    authors' ``BatchHeadWrapper``/``queued_forward``), so that its statistics see more than the
    authors' batch of 1.

    The queues: D keeps two, ``real`` and ``fake`` (the authors keep four, real/fake per domain,
    two per discriminator), ring buffers of ``queue_size`` samples (3), features detached. The
    authors' training uses them so (``uvcgan2/cgan/uvcgan2.py``): D's step runs
    ``D(real, queue="real", update_queue=True)`` then ``D(fake, queue="fake", update_queue=True)``
    (each reads the queue, then pushes its features); G's step reads without pushing,
    ``D(fake, queue="fake")``; the gradient penalty reads both without pushing, at the mix of real
    and fake images and the same mix of the two queues, ``extra_bodies = alpha * D.query("real") +
    (1 - alpha) * D.query("fake")``. ``D(x)`` alone uses no queue.

    What is saved: the queues are buffers, in the state dict (``queue_real``/``queue_fake``: the
    features (queue_size, C, h, w); ``*_count``: how many are filled; ``*_next``: the next slot),
    so a checkpoint resumes them (the authors' checkpoints do not save them: they restart empty).
    A state dict without them (the authors') loads and leaves the queues empty. Spectral norm's
    ``_u``/``_v`` vectors and BatchNorm's running statistics are in the state dict too.

    Args:
        in_channels: image channels (3).
        image_size: H = W, or (H, W) (256): sizes the queues' buffers.
        ndf, n_layers, norm, max_mult: the body (64, 3, "instance", 8).
        head: "batch-norm-2d" (AFHQ) or "batch-stdev" (CelebA-HQ).
        head_mid_features, head_output_features: the head's widths (None = the body's, 1).
        head_activ, head_activ_output: the head's activations ("leakyrelu", slope 0.01; None).
        queue_size: samples each queue keeps (3); 0 disables them.
        spectr_norm: spectral normalisation (Miyato et al., 2018; PyTorch's parametrization, one
            power iteration per training-mode forward) of every body convolution (True); the head
            has none.
        init_gain: the authors' N(0, gain) initialisation of the body, before spectral norm (0.02);
            the head keeps PyTorch's defaults. None: PyTorch's defaults throughout.

    Raises:
        ValueError: unknown ``head``, ``norm`` or activation; an image size the body shrinks to
            nothing; at forward, an unknown queue name, ``update_queue`` without one, or features
            whose shape is not the queue's (images not of ``image_size``).
    """

    def __init__(self, in_channels: int = 3, image_size: int | Sequence[int] = 256, ndf: int = 64,
                 n_layers: int = 3, norm: str = "instance", max_mult: int = 8, head: str = "batch-norm-2d",
                 head_mid_features: int | None = None, head_output_features: int = 1,
                 head_activ: str | None = "leakyrelu", head_activ_output: str | None = None, queue_size: int = 3,
                 spectr_norm: bool = True, init_gain: float | None = 0.02):
        super().__init__()
        if head not in _HEADS:
            raise ValueError(f"unknown head {head!r}; one of {sorted(_HEADS)}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0; got {queue_size}")
        self.in_channels = in_channels
        self._body = NLayerBody(in_channels, ndf, n_layers, norm, max_mult)
        h, w = self._body.output_size(*_size(image_size))
        if h < 1 or w < 1:
            raise ValueError(f"image_size {image_size}: the body shrinks it to nothing ({h}x{w})")
        if init_gain is not None:
            authors_init(self._body, init_gain)
        if spectr_norm:
            for m in list(self._body.modules()):
                if isinstance(m, nn.Conv2d):
                    spectral_norm(m, "weight", n_power_iterations=1)
        features = self._body.out_features
        self._head = _HEADS[head](features, head_mid_features, head_output_features, head_activ, head_activ_output)
        self.queue_size = queue_size
        for name in _QUEUES:
            self.register_buffer(f"queue_{name}", torch.zeros(queue_size, features, h, w))
            self.register_buffer(f"queue_{name}_count", torch.zeros((), dtype=torch.long))
            self.register_buffer(f"queue_{name}_next", torch.zeros((), dtype=torch.long))

    # the queues

    def _check_name(self, name: str) -> None:
        if name not in _QUEUES:
            raise ValueError(f"queue must be one of {_QUEUES} or None; got {name!r}")

    def query(self, name: str) -> Tensor | None:
        """The features queue ``name`` holds, (k, C, h, w) with 1 <= k <= queue_size in slot order
        (the order does not matter to the head), or None while it is empty."""
        self._check_name(name)
        count = int(getattr(self, f"queue_{name}_count"))
        return getattr(self, f"queue_{name}")[:count] if count else None

    @torch.no_grad()
    def push(self, name: str, features: Tensor) -> None:
        """Append body features (n, C, h, w) to queue ``name``, detached, overwriting the oldest
        once full (of more than ``queue_size`` rows only the last are kept): the authors' ``FastQueue``."""
        self._check_name(name)
        queue = getattr(self, f"queue_{name}")
        if features.shape[1:] != queue.shape[1:]:
            raise ValueError(f"queue {name!r} holds features of shape {tuple(queue.shape[1:])}; got "
                             f"{tuple(features.shape[1:])} (images of another size than image_size?)")
        if self.queue_size == 0:
            return
        features = features.detach()[-self.queue_size:]
        n = features.shape[0]
        nxt, count = getattr(self, f"queue_{name}_next"), getattr(self, f"queue_{name}_count")
        slots = (nxt + torch.arange(n, device=queue.device)) % self.queue_size
        queue[slots] = features.to(queue.dtype)
        nxt.copy_((nxt + n) % self.queue_size)
        count.copy_(torch.clamp(count + n, max=self.queue_size))

    def clear_queues(self) -> None:
        """Empty both queues."""
        for name in _QUEUES:
            getattr(self, f"queue_{name}").zero_()
            getattr(self, f"queue_{name}_count").zero_()
            getattr(self, f"queue_{name}_next").zero_()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        keys = [f"{prefix}queue_{n}{s}" for n in _QUEUES for s in ("", "_count", "_next")]
        absent = [k for k in keys if k not in state_dict]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if absent:  # a state dict without queues (the authors'): load the rest, start with empty queues
            for k in absent:
                if k in missing_keys:
                    missing_keys.remove(k)
            self.clear_queues()

    # the forward pass

    def forward(self, x: Tensor, queue: str | None = None, update_queue: bool = False,
                extra_bodies: Tensor | None = None, mix: Tensor | float | None = None) -> Tensor:
        """Patch logits (N, 1, h, w) of images ``x`` (N, C, H, W).

        Args:
            queue: "real" or "fake": the head also sees that queue's features; None: no queue.
            update_queue: push this batch's body features to ``queue`` after the pass.
            extra_bodies: features (k, C, h, w) to show the head instead of the queue's.
            mix: the gradient penalty's weight α of real images in its interpolates (a scalar):
                the head sees ``α · real queue + (1 − α) · fake queue`` (nothing while they are
                empty), as the authors' ``GradientPenalty`` with ``mix_type real-fake``.

        Raises:
            ValueError: unknown ``queue``; ``update_queue`` without ``queue``; ``mix`` with a
                ``queue`` or ``extra_bodies``; wrong feature shape.
        """
        if queue is not None:
            self._check_name(queue)
        elif update_queue:
            raise ValueError("update_queue needs a queue name ('real' or 'fake')")
        if mix is not None:
            if queue is not None or extra_bodies is not None:
                raise ValueError("mix reads both queues: give it without queue or extra_bodies")
            real, fake = self.query("real"), self.query("fake")
            if real is not None and fake is not None:
                extra_bodies = mix * real + (1 - mix) * fake
        body = self._body(x)
        extra = extra_bodies if extra_bodies is not None else (self.query(queue) if queue else None)
        if extra is not None and extra.shape[1:] != body.shape[1:]:
            raise ValueError(f"the queue holds features of shape {tuple(extra.shape[1:])}, this batch's are "
                             f"{tuple(body.shape[1:])} (images of another size than image_size?)")
        head_in = body if extra is None else torch.cat((body, extra.to(body.dtype)), dim=0)
        out = self._head(head_in)[: body.shape[0]]
        if update_queue:
            self.push(queue, body)
        return out


@hookimpl
def unpaired_components():
    return [
        Component("generator", "uvcgan2_generator", UVCGAN2Generator),
        Component("discriminator", "uvcgan2_discriminator", UVCGAN2Discriminator),
    ]
