"""UNSB's networks (Kim, Kwon, Kim & Ye, "Unpaired Image-to-Image Translation via Neural Schrödinger
Bridge", ICLR 2024; the authors' code: cyclomon/UNSB at d1f644f, ``models/ncsn_networks.py``, built by
``models/networks.py`` ``define_G``/``define_D`` as ``models/sb_model.py`` calls them).

- ``unsb_generator``: G(x_t, t, z) -> x_1, CUT's ResNet generator (anti-aliased down/up-sampling)
  whose residual blocks modulate their normalised input by a code mapped from the noise z
  (``--netG resnet_9blocks_cond``). Its blocks also project the time step's embedding, but the
  authors' block drops it (``ResnetBlock_cond.forward``): their G, and so this one, ignores t.
- ``unsb_discriminator``: D(x, t) -> patch logits, a 70x70 PatchGAN whose every block adds a
  projection of the time step's embedding (``--netD basic_cond``).
- ``unsb_energy``: the energy network E(p, t, q) of the Schrödinger-bridge loss: the same PatchGAN
  on 4C channels, fed two (x_t ‖ x_1) pairs concatenated (``netE = define_D(output_nc * 4, ...)``).

The layers, their order of construction and registration and their names are the authors': a
state dict of their networks loads into these, and the same seed with the same initialisation
gives the same weights (``tests/test_unsb_networks.py``, measured on their code). The authors
initialise with ``init_type xavier, init_gain 0.02`` after construction (biases 0: this also
overwrites the constructors' modulation scale biases of 1); that is the recipe's ``init: xavier``.
Time steps are integers in [0, num_timesteps) (UNSB's ``time_idx``), (N,) or (1,) for the whole
batch, embedded sinusoidally (:func:`timestep_embedding`); nothing here uses the times t_s
themselves. Their option ``--no_antialias`` builds a broken discriminator (its layers are dropped),
so only the generator offers it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired import Component, hookimpl

from .antialias import Downsample, Upsample
from .layers import InstanceNorm2d, check_image

__all__ = ["UNSBDiscriminator", "UNSBEnergy", "UNSBGenerator", "timestep_embedding"]

NORMS = ("instance", "batch", "none")


def _norm(norm: str, what: str):
    """The authors' ``get_norm_layer`` and their bias rule: convolutions before a norm carry a bias
    only with instance norm (with ``none`` too they have none: their test is ``== InstanceNorm2d``).
    Instance norm is :class:`~unpaired_plugins.networks.layers.InstanceNorm2d` (torch's values, to
    rounding; faster on the CPU)."""
    if norm == "instance":
        return (lambda c: InstanceNorm2d(c, affine=False, track_running_stats=False)), True
    if norm == "batch":
        return (lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)), False
    if norm == "none":
        return (lambda c: nn.Identity()), False
    raise ValueError(f"{what}: norm must be one of {', '.join(NORMS)}; got {norm!r}")


def _time_steps(t: Tensor | int | None, n: int, device: torch.device, num_timesteps: int, what: str) -> Tensor:
    """Time steps as a long tensor (N,) or (1,); None is step 0 for every sample.

    Raises:
        ValueError: a float tensor, a shape other than (), (1,) or (N,), or (outside tracing and
            the meta device) a step outside [0, num_timesteps).
    """
    if t is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    if not isinstance(t, Tensor):
        t = torch.tensor([int(t)], device=device)
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"{what}: time steps are integer indices in [0, {num_timesteps}); got dtype {t.dtype}")
    t = t.reshape(-1) if t.ndim == 0 else t
    if t.ndim != 1 or t.shape[0] not in (1, n):
        raise ValueError(f"{what}: time steps of shape (N,) = ({n},) or (1,); got {tuple(t.shape)}")
    if (not torch.jit.is_tracing() and t.device.type != "meta" and t.numel()
            and (int(t.min()) < 0 or int(t.max()) >= num_timesteps)):
        raise ValueError(f"{what}: time steps must be in [0, {num_timesteps}); got {t.tolist()}")
    return t


def timestep_embedding(t: Tensor, dim: int, max_positions: int = 10000) -> Tensor:
    """The sinusoidal embedding (N, dim) of time steps t (N,) (UNSB's ``get_timestep_embedding``):
    ``[sin(t·w_0..w_{h-1}), cos(t·w_0..w_{h-1})]``, ``h = dim // 2``,
    ``w_k = exp(−k·log(max_positions)/(h − 1))``; a zero column appended when dim is odd.

    Raises:
        ValueError: ``t`` is not 1-D, or ``dim < 4`` (h − 1 would be 0).
    """
    if t.ndim != 1:
        raise ValueError(f"timestep_embedding: time steps (N,), got shape {tuple(t.shape)}")
    half = dim // 2
    if half < 2:
        raise ValueError(f"timestep_embedding: dim must be at least 4, got {dim}")
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(max_positions) / (half - 1)))
    angle = t.float()[:, None] * freq[None, :]
    emb = torch.cat([angle.sin(), angle.cos()], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class PixelNorm(nn.Module):
    """(N, D) -> (N, D): each row divided by its root mean square, ``x / sqrt(mean(x²) + 1e-8)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class AdaptiveLayer(nn.Module):
    """``gamma · x + beta`` per channel, ``[gamma, beta] = style_net(code)``: x (N, C, H, W), code
    (N, D) -> (N, C, H, W). The constructor sets gamma's biases to 1 and beta's to 0."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.style_net = nn.Linear(style_dim, 2 * channels)
        with torch.no_grad():
            self.style_net.bias[:channels].fill_(1.0)
            self.style_net.bias[channels:].zero_()

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.style_net(code)[:, :, None, None].chunk(2, dim=1)
        return gamma * x + beta


class ResnetBlockCond(nn.Module):
    """UNSB's conditioned residual block (N, dim, H, W) -> (N, dim, H, W), as the authors' code
    computes it: ``x + norm(conv(pad(dropout(relu(gamma(z)·norm(x) + beta(z))))))``.

    The authors meant ``conv_block`` (pad, 3x3 conv, norm) plus the time projection ``Dense_time``
    to come first, but their loop applies each of its layers to the block's input x instead of
    the previous output, so only its last layer, the norm, reaches the output. ``conv_block``'s
    convolution, ``Dense_time`` and ``style`` (never called) are built all the same: they are in
    the authors' state dict and parameter count, and receive no gradient.
    """

    def __init__(self, dim: int, temb_dim: int, z_dim: int, norm: str = "instance", dropout: bool = False):
        super().__init__()
        make_norm, bias = _norm(norm, "unsb_generator")
        # construction and registration orders are the authors': conv_block, conv_fin, adaptive, ...
        self.conv_block = nn.ModuleList([nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim)])
        self.conv_fin = nn.ModuleList()
        self.adaptive = AdaptiveLayer(dim, z_dim)
        self.conv_fin.append(nn.ReLU(True))
        if dropout:
            self.conv_fin.append(nn.Dropout(0.5))
        self.conv_fin.extend([nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim)])
        self.Dense_time = nn.Linear(temb_dim, dim)
        nn.init.zeros_(self.Dense_time.bias)
        self.style = nn.Linear(z_dim, 2 * dim)
        with torch.no_grad():
            self.style.bias[:dim].fill_(1.0)
            self.style.bias[dim:].zero_()

    def forward(self, x: Tensor, temb: Tensor, zemb: Tensor) -> Tensor:
        # temb is accepted and unused, as in the authors' forward (see the class docstring)
        h = self.adaptive(self.conv_block[-1](x), zemb)
        for layer in self.conv_fin:
            h = layer(h)
        return x + h


class UNSBGenerator(nn.Module):
    """UNSB's generator G(x_t, t, z) (the authors' ``ResnetGenerator_ncsn``, ``--netG resnet_9blocks_cond``).

    ``forward(x, t=None, z=None)``: x (N, in_channels, H, W) in [-1, 1], H and W multiples of 4;
    t time steps, long (N,) or (1,) in [0, num_timesteps) (None: 0); z noise codes (N, 4·ngf),
    N(0, I) in UNSB (None: zeros) -> the predicted end point x_1 (N, out_channels, H, W) in
    [-1, 1] (tanh). The output does not depend on t (see :class:`ResnetBlockCond`).

    ``forward(x, t, z, layers, encode_only=True)`` is the feature read of UNSB's
    ``calculate_NCE_loss`` (``netG(x, time_idx * 0, z, nce_layers, encode_only=True)``): a list of
    the outputs of ``layers``, the authors' ids into ``model`` followed by ``model_res`` (UNSB's
    0, 4, 8, 12, 16: the 3-pixel padded input (N, C, H+6, W+6), the two down-sampling convolutions
    (N, 2·ngf, H, W) and (N, 4·ngf, H/2, W/2), residual blocks 0 and 4 (N, 4·ngf, H/4, W/4)); the
    pass stops after the last one. With ``encode_only=False`` it returns, as the authors' code,
    ``(h, feats)``, h the residual trunk's output (N, 4·ngf, H/4, W/4), not an image. Hook-based
    feature readers name the same layers by path: :meth:`layer_names` (``model.0`` ... ``model_res.4``).

    Args:
        in_channels, out_channels: image channels (the authors' 3).
        ngf: width of the first layer (64); noise codes and the time embedding are 4·ngf wide.
        n_blocks: residual blocks (9).
        n_mlp: hidden Linear+LeakyReLU layers of the noise mapping after its first (``--n_mlp`` 3).
        norm: ``instance`` (``--normG``), ``batch`` or ``none``.
        dropout: Dropout(0.5) in each residual block (the authors' ``--no_dropout`` is True: off).
        antialias: blur-pool down-sampling (True); False: stride-2 convolutions (``--no_antialias``).
        antialias_up: blur up-sampling + conv (True); False: transposed convs (``--no_antialias_up``).
        num_timesteps: T, the bridge's steps (``--num_timesteps`` 5): t must be below it.

    Raises:
        ValueError: a non-positive width, channel count or T, negative n_blocks or n_mlp, an
            unknown norm; in ``forward``, images of the wrong channel count or rank, sides not
            multiples of 4 (a DataError), bad time steps, z not (N, 4·ngf), a layer id out of range.
    """

    size_divisor = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9, n_mlp: int = 3,
                 norm: str = "instance", dropout: bool = False, antialias: bool = True, antialias_up: bool = True,
                 num_timesteps: int = 5):
        super().__init__()
        if min(in_channels, out_channels, ngf, num_timesteps) < 1 or n_blocks < 0 or n_mlp < 0:
            raise ValueError(f"unsb_generator: channels, ngf and num_timesteps must be >= 1, n_blocks and n_mlp >= 0; "
                             f"got in_channels={in_channels}, out_channels={out_channels}, ngf={ngf}, "
                             f"num_timesteps={num_timesteps}, n_blocks={n_blocks}, n_mlp={n_mlp}")
        make_norm, bias = _norm(norm, "unsb_generator")
        self.in_channels, self.out_channels, self.ngf, self.num_timesteps = in_channels, out_channels, ngf, num_timesteps
        width = 4 * ngf
        # Built in the authors' order: encoder layers, residual blocks, decoder, mapping, time MLP;
        # registered in theirs: model_res, model, model_upsample, z_transform, time_embed.
        enc: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), make_norm(ngf),
                                nn.ReLU(True)]
        for c in (ngf, 2 * ngf):
            if antialias:
                enc += [nn.Conv2d(c, 2 * c, 3, padding=1, bias=bias), make_norm(2 * c), nn.ReLU(True), Downsample(2 * c)]
            else:
                enc += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), make_norm(2 * c), nn.ReLU(True)]
        self.model_res = nn.ModuleList()
        for _ in range(n_blocks):
            self.model_res.append(ResnetBlockCond(width, width, width, norm, dropout))
        dec: list[nn.Module] = []
        for c in (4 * ngf, 2 * ngf):
            if antialias_up:
                dec += [Upsample(c), nn.Conv2d(c, c // 2, 3, padding=1, bias=bias)]
            else:
                dec += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            dec += [make_norm(c // 2), nn.ReLU(True)]
        dec += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*enc)
        self.model_upsample = nn.Sequential(*dec)
        mapping: list[nn.Module] = [PixelNorm(), nn.Linear(width, width), nn.LeakyReLU(0.2)]
        for _ in range(n_mlp):
            mapping += [nn.Linear(width, width), nn.LeakyReLU(0.2)]
        self.z_transform = nn.Sequential(*mapping)
        self.time_embed = nn.Sequential(nn.Linear(ngf, width), nn.LeakyReLU(0.2), nn.Linear(width, width),
                                        nn.LeakyReLU(0.2))
        nn.init.zeros_(self.time_embed[0].bias)
        nn.init.zeros_(self.time_embed[2].bias)

    def layer_names(self, ids: Sequence[int] = (0, 4, 8, 12, 16)) -> list[str]:
        """Submodule paths of the authors' layer ids (``model`` then ``model_res``), for hook-based
        feature readers such as PatchNCE's: (0, 4, 8, 12, 16) -> model.0, model.4, model.8,
        model_res.0, model_res.4.

        Raises:
            ValueError: an id outside [0, len(model) + n_blocks).
        """
        n, total = len(self.model), len(self.model) + len(self.model_res)
        names = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < total:
                raise ValueError(f"unsb_generator: layer ids are ints in [0, {total}) (model 0..{n - 1}, then "
                                 f"residual blocks); got {i!r}")
            names.append(f"model.{i}" if i < n else f"model_res.{i - n}")
        return names

    def forward(self, x: Tensor, t: Tensor | int | None = None, z: Tensor | None = None,
                layers: Sequence[int] | None = None, encode_only: bool = False):
        check_image(x, self.in_channels, self.size_divisor, "unsb_generator")
        n = x.shape[0]
        t = _time_steps(t, n, x.device, self.num_timesteps, "unsb_generator")
        width = 4 * self.ngf
        if z is None:
            z = x.new_zeros(n, width)
        elif z.ndim != 2 or z.shape[1] != width or z.shape[0] not in (1, n):
            raise ValueError(f"unsb_generator: noise codes z of shape (N, 4·ngf) = ({n}, {width}); got {tuple(z.shape)}")
        zemb = self.z_transform(z)
        temb = self.time_embed(timestep_embedding(t, self.ngf).to(zemb.dtype))
        if layers:
            wanted = set(self.layer_names(layers))  # validates the ids
            last, feats, h = max(layers), [], x
            for i, layer in enumerate(self.model):
                h = layer(h)
                if f"model.{i}" in wanted:
                    feats.append(h)
                if encode_only and i == last:
                    return feats
            for i, block in enumerate(self.model_res):
                h = block(h, temb, zemb)
                if f"model_res.{i}" in wanted:
                    feats.append(h)
                if encode_only and i + len(self.model) == last:
                    return feats
            return h, feats
        h = self.model(x)
        for block in self.model_res:
            h = block(h, temb, zemb)
        return self.model_upsample(h)


class ConvBlockCond(nn.Module):
    """One block of UNSB's PatchGAN: (N, c_in, H, W), temb (N or 1, temb_dim) -> (N, c_out, h, w):
    4x4 conv (stride 1, pad 1) + ``dense(temb)`` per channel, [norm], LeakyReLU(0.2), then
    [blur-pool stride 2]: h = ceil((H − 1) / 2) with down-sampling, H − 1 without."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int, norm: str | None = "instance", bias: bool = True,
                 downsample: bool = True):
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(c_in, c_out, 4, stride=1, padding=1, bias=bias)
        self.use_norm = norm is not None
        if norm is not None:
            self.norm = _norm(norm, "unsb_discriminator")[0](c_out)
        self.act = nn.LeakyReLU(0.2, True)
        self.down = Downsample(c_out)  # built even where unused, as the authors' (its buffer is in their state dict)
        self.dense = nn.Linear(temb_dim, c_out)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(x) + self.dense(temb)[:, :, None, None]
        if self.use_norm:
            h = self.norm(h)
        h = self.act(h)
        return self.down(h) if self.downsample else h


class TimestepEmbedding(nn.Module):
    """Time steps (N,) -> (N, dim): :func:`timestep_embedding`, then Linear, LeakyReLU(0.2), Linear,
    LeakyReLU(0.2) (``main``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.embedding_dim = dim
        self.main = nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim), nn.LeakyReLU(0.2))

    def forward(self, t: Tensor) -> Tensor:
        return self.main(timestep_embedding(t, self.embedding_dim))


class UNSBDiscriminator(nn.Module):
    """UNSB's time-conditioned PatchGAN D(x, t) (the authors' ``NLayerDiscriminator_ncsn``,
    ``--netD basic_cond``).

    ``forward(x, t, x2=None)``: x (N, C, H, W) images in [-1, 1], t time steps, long (N,) or (1,)
    in [0, num_timesteps); x2 (N, C2, H, W) an optional second input concatenated to x along
    channels (C + C2 = in_channels) -> logits (N, 1, h, w), unbounded: (N, 1, 30, 30) at 256
    pixels, (N, 1, 2, 2) at 32. The blocks: conv 4x4 (no norm) + blur-pool, then n_layers − 1
    conv + norm + blur-pool doubling the width (at most 8·ndf), one conv + norm without
    down-sampling, a final 4x4 conv to 1 channel; every block adds a projection of the time
    step's embedding (4·ndf wide) before its norm.

    Args:
        in_channels: channels of x (and x2 together): 3 for D on RGB; :class:`UNSBEnergy` sets 4C.
        ndf: first layer's width (``--ndf`` 64).
        n_layers: down-sampling blocks (3: the 70x70 PatchGAN; ``basic_cond`` fixes it at 3).
        norm: ``instance`` (``--normD``), ``batch`` or ``none``.
        num_timesteps: T (5): t must be below it.

    Raises:
        ValueError: a non-positive width, channel count, layer count or T, an unknown norm; in
            ``forward``, inputs whose channels do not add up to in_channels, bad time steps.
    """

    _what = "unsb_discriminator"

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 num_timesteps: int = 5):
        super().__init__()
        if min(in_channels, ndf, n_layers, num_timesteps) < 1:
            raise ValueError(f"{self._what}: in_channels, ndf, n_layers and num_timesteps must be >= 1; got "
                             f"{in_channels}, {ndf}, {n_layers}, {num_timesteps}")
        bias = _norm(norm, self._what)[1]
        self.in_channels, self.num_timesteps = in_channels, num_timesteps
        temb_dim = 4 * ndf
        self.model_main = nn.ModuleList([ConvBlockCond(in_channels, ndf, temb_dim, norm=None, bias=bias)])
        mult = 1
        for k in range(1, n_layers):
            prev, mult = mult, min(2 ** k, 8)
            self.model_main.append(ConvBlockCond(ndf * prev, ndf * mult, temb_dim, norm, bias))
        prev, mult = mult, min(2 ** n_layers, 8)
        self.model_main.append(ConvBlockCond(ndf * prev, ndf * mult, temb_dim, norm, bias, downsample=False))
        self.final_conv = nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)
        self.t_embed = TimestepEmbedding(temb_dim)

    def forward(self, x: Tensor, t: Tensor | int, x2: Tensor | None = None) -> Tensor:
        h = x if x2 is None else torch.cat([x, x2], dim=1)
        if h.ndim != 4 or h.shape[1] != self.in_channels:
            got = tuple(x.shape) if x2 is None else f"{tuple(x.shape)} + {tuple(x2.shape)}"
            raise ValueError(f"{self._what}: inputs of (N, {self.in_channels}, H, W) in all; got {got}")
        temb = self.t_embed(_time_steps(t, h.shape[0], h.device, self.num_timesteps, self._what)).to(h.dtype)
        for block in self.model_main:
            h = block(h, temb)
        return self.final_conv(h)


class UNSBEnergy(UNSBDiscriminator):
    """UNSB's energy network E (``netE = define_D(output_nc * 4, ndf, netD, ...)``): the
    time-conditioned PatchGAN of :class:`UNSBDiscriminator` on two pairs of images.

    ``forward(p, t, q)``: p and q pairs ``x_t ‖ x_1`` (N, 2C, H, W) (a bridge state and the
    generator's prediction from it, concatenated along channels), t time steps (N,) or (1,) ->
    unbounded scores (N, 1, h, w) of the concatenation ``p ‖ q``. UNSB reads E(p, t, p) (a pair
    with itself: the mean is the energy term) and E(p, t, q) with q the pair of a second sample
    (``logsumexp`` over all N·h·w scores): ``loss_E = −mean E(p, t, p) + L + L²``,
    ``L = logsumexp E(p, t, q)``. A state dict of the authors' netE loads into it.

    Args:
        in_channels: C, the image channels (3): the network reads 4C.
        ndf, n_layers, norm, num_timesteps: as :class:`UNSBDiscriminator`.

    Raises:
        ValueError: as :class:`UNSBDiscriminator`; in ``forward``, q missing or p and q not both
            (N, 2C, H, W).
    """

    _what = "unsb_energy"

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 num_timesteps: int = 5):
        if in_channels < 1:
            raise ValueError(f"unsb_energy: in_channels (image channels) must be >= 1; got {in_channels}")
        super().__init__(4 * in_channels, ndf, n_layers, norm, num_timesteps)
        self.image_channels = in_channels

    def forward(self, p: Tensor, t: Tensor | int, q: Tensor | None = None) -> Tensor:
        pair = 2 * self.image_channels
        if q is None or p.ndim != 4 or p.shape[1] != pair or q.shape != p.shape:
            raise ValueError(f"unsb_energy: two pairs x_t ‖ x_1 of shape (N, {pair}, H, W); got "
                             f"{tuple(p.shape)} and {None if q is None else tuple(q.shape)}")
        return super().forward(p, t, q)


@hookimpl
def unpaired_components():
    return [
        Component("generator", "unsb_generator", UNSBGenerator,
                  "UNSB's generator G(x_t, t, z): a noise-modulated ResNet generator (Kim et al. 2024)."),
        Component("discriminator", "unsb_discriminator", UNSBDiscriminator,
                  "UNSB's time-conditioned PatchGAN D(x, t) (Kim et al. 2024)."),
        Component("discriminator", "unsb_energy", UNSBEnergy,
                  "UNSB's energy network E(x_t ‖ x_1, t, x'_t ‖ x'_1), a PatchGAN on 4C channels (Kim et al. 2024)."),
    ]
