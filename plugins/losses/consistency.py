"""Consistency losses (kind ``consistency_loss``): L1, L2, SSIM and a timm feature (perceptual) loss.

Each is a plain function and a thin ``nn.Module`` whose ``forward(input, target)`` returns a scalar
tensor. Both images are (N, C, H, W) in [-1, 1] with equal shapes; a mismatch raises a ValueError
naming both shapes (and "3 vs 1 channels" when only the channel counts differ — e.g. an identity
loss between a 3-channel and a 1-channel domain).

CycleGAN (Zhu et al., ICCV 2017) uses ``l1`` for both the cycle-consistency terms (eq. 2) and the
identity terms (section 5.2).
"""

from __future__ import annotations

from typing import Sequence

import kornia
import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired import Component, hookimpl
from unpaired.plugin.losses import check_same_shape

__all__ = [
    "L1Loss",
    "L2Loss",
    "PerceptualLoss",
    "SSIMLoss",
    "l1_loss",
    "l2_loss",
    "ssim_loss",
]


def _check_images(input: Tensor, target: Tensor, what: str) -> None:
    check_same_shape(input, target, what)
    if input.ndim != 4:
        raise ValueError(f"{what}: expected images (N, C, H, W), got shape {tuple(input.shape)}.")


# -- L1 / L2 ------------------------------------------------------------------------------------
def l1_loss(input: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error over all elements: ``mean(|input − target|)``.

    The cycle-consistency (eq. 2) and identity (section 5.2) loss of CycleGAN (Zhu et al.,
    "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks", ICCV 2017).

    Args:
        input: images (N, C, H, W) in [-1, 1], e.g. the reconstruction F(G(a)).
        target: images of the same shape in [-1, 1], e.g. a.

    Returns:
        Scalar tensor, in [0, 2] for images in [-1, 1].

    Raises:
        ValueError: the shapes differ (the message names both, and the channel counts).
    """
    check_same_shape(input, target, "l1 loss")
    return F.l1_loss(input, target)


def l2_loss(input: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over all elements: ``mean((input − target)²)``.

    The L2 alternative to CycleGAN's L1 consistency terms (Zhu et al., ICCV 2017, eq. 2).

    Args:
        input: images (N, C, H, W) in [-1, 1].
        target: images of the same shape in [-1, 1].

    Returns:
        Scalar tensor, in [0, 4] for images in [-1, 1].

    Raises:
        ValueError: the shapes differ (the message names both, and the channel counts).
    """
    check_same_shape(input, target, "l2 loss")
    return F.mse_loss(input, target)


class L1Loss(nn.Module):
    """Mean absolute error, ``mean(|input − target|)`` (Zhu et al., ICCV 2017, eq. 2).

    ``forward(input, target)``: images (N, C, H, W) in [-1, 1] of equal shape → scalar.
    See :func:`l1_loss`.

    Raises:
        ValueError: (in ``forward``) the shapes differ.
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l1_loss(input, target)


class DiversitySensitiveLoss(nn.Module):
    """The diversity-sensitive loss, negated to be minimised: ``-mean(|input − target|)`` with the
    target detached (Choi et al., StarGAN v2, CVPR 2020, eq. 4; clovaai/stargan-v2
    ``core/solver.py``: ``loss_ds = mean(|x_fake − x_fake2.detach()|)``, subtracted with weight
    λ_ds). Its weight stays positive in a recipe (usually a schedule decaying to 0); the term
    pushes two translations of one input with different style codes apart.

    ``forward(input, target)``: two translations (N, C, H, W) in [-1, 1] of equal shape -> scalar in [-2, 0].

    Raises:
        ValueError: (in ``forward``) the shapes differ.
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return -l1_loss(input, target.detach())


class L2Loss(nn.Module):
    """Mean squared error, ``mean((input − target)²)``.

    ``forward(input, target)``: images (N, C, H, W) in [-1, 1] of equal shape → scalar.
    See :func:`l2_loss`.

    Raises:
        ValueError: (in ``forward``) the shapes differ.
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l2_loss(input, target)


# -- SSIM ---------------------------------------------------------------------------------------
def ssim_loss(
    input: Tensor,
    target: Tensor,
    window_size: int = 11,
    max_val: float = 1.0,
    eps: float = 0.0,
) -> Tensor:
    """Structural dissimilarity ``1 − mean(SSIM)`` of two images in [-1, 1] (Wang et al., "Image
    Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004).

    Both images are mapped to [0, 1] with ``(x + 1) / 2``, then the per-pixel SSIM map of
    :func:`kornia.metrics.ssim` (Gaussian window of ``window_size`` taps, σ = 1.5, reflect padding,
    c₁ = (0.01·max_val)², c₂ = (0.03·max_val)²) is averaged over every pixel, channel and sample.

    Note the convention: this returns ``1 − SSIM`` (0 for identical images, in [0, 2] in exact
    arithmetic), which is **twice** :func:`kornia.losses.ssim_loss` — kornia returns
    ``clamp((1 − SSIM) / 2, 0, 1)`` per pixel. The map is computed in float32 whatever the input
    dtype (its constants underflow in float16).

    Args:
        input: images (N, C, H, W) in [-1, 1]; H and W larger than ``window_size // 2``.
        target: images of the same shape in [-1, 1].
        window_size: odd number of taps of the Gaussian window (default 11).
        max_val: dynamic range L of the images after mapping to [0, 1] (default 1.0).
        eps: added to the SSIM denominator; kornia's default is 1e-12, here 0.0 so that
            identical images give exactly zero loss (the denominator is ≥ c₁·c₂ > 0 anyway).

    Returns:
        Scalar tensor.

    Raises:
        ValueError: the shapes differ, or the images are not 4-D.
    """
    _check_images(input, target, "ssim loss")
    x = (input.float() + 1.0) / 2.0
    y = (target.float() + 1.0) / 2.0
    ssim_map = kornia.metrics.ssim(x, y, window_size, max_val=max_val, eps=eps)
    return 1.0 - ssim_map.mean()


class SSIMLoss(nn.Module):
    """Structural dissimilarity ``1 − mean(SSIM)`` of images in [-1, 1] (Wang et al., TIP 2004).

    ``forward(input, target)``: images (N, C, H, W) in [-1, 1] of equal shape → scalar; zero for
    identical images. Returns ``1 − SSIM``, i.e. twice :func:`kornia.losses.ssim_loss`'s
    ``(1 − SSIM) / 2``. See :func:`ssim_loss`.

    Args:
        window_size: odd number of taps of the Gaussian window (default 11).
        max_val: dynamic range of the images after mapping to [0, 1] (default 1.0).

    Raises:
        ValueError: ``window_size`` not a positive odd integer; (in ``forward``) the shapes differ.
    """

    def __init__(self, window_size: int = 11, max_val: float = 1.0):
        super().__init__()
        if int(window_size) != window_size or window_size < 1 or window_size % 2 == 0:
            raise ValueError(f"ssim: window_size must be a positive odd integer, got {window_size}.")
        self.window_size = int(window_size)
        self.max_val = float(max_val)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return ssim_loss(input, target, self.window_size, self.max_val)

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, max_val={self.max_val}"


# -- perceptual ---------------------------------------------------------------------------------
class PerceptualLoss(nn.Module):
    """Feature (perceptual) loss on a frozen timm backbone (Johnson et al., "Perceptual Losses for
    Real-Time Style Transfer and Super-Resolution", ECCV 2016).

    ``mean over layers l of mean(|φ_l(input) − φ_l(target)|)``, where ``φ_l`` are the feature maps
    of ``timm.create_model(backbone, features_only=True, out_indices=layers)``. Images in [-1, 1]
    are mapped to [0, 1] and then normalised with the backbone's mean and std (ImageNet's for
    resnet18); 1-channel images are repeated to 3 channels.

    Without pretrained weights (the default, ``pretrained=False``) the backbone is randomly
    initialised, so this is a *random-feature* loss: still a useful multi-scale structural
    distance, but not the VGG/ImageNet perceptual loss of the paper. ``pretrained=True`` asks timm
    for the weights, which must then be available locally (e.g. in the Hugging Face cache, with
    ``HF_HUB_OFFLINE=1``); nothing is downloaded in a machine without network access.

    The backbone is frozen: its parameters have ``requires_grad=False`` and it stays in eval mode
    even when the loss module is put in training mode. Gradients flow to ``input`` (and to
    ``target`` if it requires them).

    ``forward(input, target)``: images (N, C, H, W) in [-1, 1] of equal shape, C = 1 or 3 → scalar.

    Args:
        backbone: a timm model name supporting ``features_only`` (default ``"resnet18"``).
        layers: feature indices (timm ``out_indices``); default (1, 2, 3), for resnet18 the
            outputs of layer1-layer3 (strides 4, 8, 16).
        pretrained: load pretrained weights through timm (default False; see above).

    Raises:
        ValueError: unknown backbone, or pretrained weights that cannot be loaded; (in
            ``forward``) the shapes differ, or C is neither 1 nor 3.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        layers: Sequence[int] = (1, 2, 3),
        pretrained: bool = False,
    ):
        super().__init__()
        if not timm.is_model(backbone):
            hint = timm.list_models(f"{backbone[:4]}*")[:8]
            raise ValueError(
                f"perceptual: unknown timm backbone '{backbone}'"
                + (f"; similar names: {', '.join(hint)}." if hint else ".")
            )
        try:
            net = timm.create_model(
                backbone, features_only=True, pretrained=pretrained, out_indices=tuple(layers)
            )
        except Exception as err:  # no weights locally, no network, bad out_indices, ...
            raise ValueError(
                f"perceptual: cannot build timm backbone '{backbone}' with layers "
                f"{tuple(layers)} (pretrained={pretrained}): {err}"
            ) from err
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.backbone = net
        self.backbone_name = backbone
        self.layers = tuple(layers)
        cfg = getattr(net, "pretrained_cfg", None) or {}
        mean = cfg.get("mean", (0.485, 0.456, 0.406))
        std = cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics never change
        return self

    def _features(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = ((x + 1.0) / 2.0 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.backbone(x)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        _check_images(input, target, "perceptual loss")
        if input.shape[1] not in (1, 3):
            raise ValueError(
                f"perceptual loss: expected 1- or 3-channel images, got {input.shape[1]} channels "
                f"(shape {tuple(input.shape)})."
            )
        feats_in = self._features(input)
        feats_tg = self._features(target)
        return sum(F.l1_loss(a, b) for a, b in zip(feats_in, feats_tg)) / len(feats_in)

    def extra_repr(self) -> str:
        return f"backbone={self.backbone_name!r}, layers={self.layers}"


@hookimpl
def unpaired_components():
    kind = "consistency_loss"
    return [
        Component(kind, "l1", L1Loss),
        Component(kind, "l2", L2Loss),
        Component(kind, "diversity", DiversitySensitiveLoss),
        Component(kind, "ssim", SSIMLoss),
        Component(kind, "perceptual", PerceptualLoss),
    ]
