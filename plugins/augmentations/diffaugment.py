"""Differentiable augmentation of everything a discriminator sees (kind ``augmentation``): DiffAugment
(Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS
2020; the authors' code mit-han-lab/data-efficient-gans, ``DiffAugment_pytorch.py``).

A discriminator given ``augment:`` in the recipe sees every image it scores (real, generated,
a penalty's interpolates) through the transforms; they are plain tensor operations, so the
generator's gradient flows back through them. Each sample of each call gets its own draw (the
authors' code draws anew per call), from the run's random generator (CPU), so a resumed run draws
what an uninterrupted one would. Images are (N, C, H, W) in [-1, 1]; a sample's transform is the
same for all its channels (a conditional discriminator's condition and image move together).

The policies, as the authors define them:

- ``color``: brightness ``x + (u − 0.5)``, saturation ``(x − mean_c x) · 2u + mean_c x``, contrast
  ``(x − mean x) · (u + 0.5) + mean x``, each u ~ U(0, 1) per sample (mean_c: over channels;
  mean: over the whole image);
- ``translation``: an integer shift of up to H/8 rows and W/8 columns each way, what moves in is 0;
- ``cutout``: a square of H/2 x W/2 pixels around a random centre (clipped at the border) set to 0.

kornia's ``RandomAffine``/``RandomErasing`` were considered: they interpolate sub-pixel shifts and
draw erasing boxes of random size, not DiffAugment's integer shifts and fixed half-size square;
the definitions here are a few tensor operations each.

Recipe::

    networks:
      D_A: {type: basic, args: {in_channels: 1}, augment: {type: diffaugment, args: {policy: [color, translation, cutout]}}}
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.registry import Component

__all__ = ["AdaptiveAugment", "DiffAugment", "brightness", "contrast", "cutout", "saturation", "translation"]

POLICIES = ("color", "translation", "cutout")


def _uniform(x: Tensor, generator: torch.Generator) -> Tensor:
    """u ~ U(0, 1), one per sample, shaped (N, 1, 1, 1) on x's device and dtype."""
    return torch.rand((x.shape[0], 1, 1, 1), generator=generator).to(x.device, x.dtype)


def brightness(x: Tensor, u: Tensor) -> Tensor:
    """``x + (u − 0.5)``; u (N, 1, 1, 1) in [0, 1]."""
    return x + (u - 0.5)


def saturation(x: Tensor, u: Tensor) -> Tensor:
    """``(x − mean over channels) · 2u + mean over channels``; u (N, 1, 1, 1) in [0, 1]."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (u * 2) + mean


def contrast(x: Tensor, u: Tensor) -> Tensor:
    """``(x − mean over C, H, W) · (u + 0.5) + mean``; u (N, 1, 1, 1) in [0, 1]."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (u + 0.5) + mean


def translation(x: Tensor, shift: Tensor) -> Tensor:
    """Each sample moved by ``shift[n] = (rows, columns)`` (N, 2) integers: pixel (i, j) of the
    result is pixel (i + rows, j + columns) of the input, 0 where that lies outside."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) + shift[:, 0].view(n, 1, 1).to(x.device)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + shift[:, 1].view(n, 1, 1).to(x.device)
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])  # a ring of zeros that outside points read
    rows, cols = rows.clamp(-1, h) + 1, cols.clamp(-1, w) + 1
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, centre: Tensor) -> Tensor:
    """Each sample with the (H/2) x (W/2) square around ``centre[n] = (row, column)`` (N, 2),
    clipped at the border, set to 0 (the authors' offsets: the square covers rows
    ``row − H/4 ... row − H/4 + H/2 − 1``)."""
    n, _, h, w = x.shape
    size_h, size_w = h // 2, w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top = (centre[:, 0] - size_h // 2).view(n, 1, 1).to(x.device)
    left = (centre[:, 1] - size_w // 2).view(n, 1, 1).to(x.device)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DiffAugment:
    """``diffaugment``: the DiffAugment transforms of ``policy``, in the authors' order.

    Args:
        policy: a list of ``color``, ``translation``, ``cutout`` (the authors' best for few images:
            all three).
        p: each sample's probability of being augmented at all (1, the authors'; below 1 leaves
            some samples as they are, as ADA's probability does).

    Raises:
        ValueError: an unknown or repeated policy, or ``p`` outside [0, 1].
    """

    def __init__(self, policy: list | tuple = POLICIES, p: float = 1.0):
        policy = [policy] if isinstance(policy, str) else list(policy)
        unknown = [name for name in policy if name not in POLICIES]
        if unknown or len(set(policy)) != len(policy):
            raise ValueError(f"policy: distinct names among {', '.join(POLICIES)}; got {policy}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.policy, self.p = tuple(policy), float(p)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """The augmented images (N, C, H, W), differentiable with respect to ``x``."""
        if x.is_meta or self.p == 0.0:  # a dry run (recipe check); nothing to augment
            return x
        out = x
        n, _, h, w = x.shape
        for name in self.policy:
            if name == "color":
                for transform in (brightness, saturation, contrast):
                    out = transform(out, _uniform(out, generator))
            elif name == "translation":
                shift = torch.stack([torch.randint(-(h // 8), h // 8 + 1, (n,), generator=generator),
                                     torch.randint(-(w // 8), w // 8 + 1, (n,), generator=generator)], dim=1)
                out = translation(out, shift)
            else:
                centre = torch.stack([torch.randint(0, h + (1 - (h // 2) % 2), (n,), generator=generator),
                                      torch.randint(0, w + (1 - (w // 2) % 2), (n,), generator=generator)], dim=1)
                out = cutout(out, centre)
        if self.p < 1.0:
            keep = (torch.rand((n, 1, 1, 1), generator=generator) >= self.p).to(x.device)
            out = torch.where(keep, x, out)
        return out

    def __repr__(self) -> str:
        return f"DiffAugment(policy={list(self.policy)}, p={self.p})"


class AdaptiveAugment(DiffAugment):
    """``ada``: DiffAugment's transforms applied to each sample with a probability p that follows
    the discriminator's overfitting, as ADA tunes its own (Karras et al., "Training Generative
    Adversarial Networks with Limited Data", NeurIPS 2020; NVlabs/stylegan2-ada-pytorch,
    ``training_loop.py``: ada_target 0.6, ada_interval 4, ada_kimg 500).

    The overfitting signal r_t = mean(sign(D(real) − threshold)) over the discriminator's scores
    of the real images in its own step; every ``interval`` iterations

        p ← max(0, min(1, p + sign(r_t − target) · n / (speed_kimg · 1000)))

    with n the real images scored since the last update: p moves by 1 over ``speed_kimg``
    thousand images. ``threshold`` is the midpoint of the real and fake targets: 0 for logits
    (BCE, hinge: ADA's), 0.5 for LSGAN's 0/1 targets. p, r_t and the counts are the plugin's
    state, saved in every checkpoint; p is logged as ``augment/<network>/p``. ADA draws each of
    its transforms with probability p on its own; here a sample gets the whole policy or nothing.

    Args:
        policy: the transforms (DiffAugment's names).
        p: the starting probability (0, ADA's).
        target, interval, speed_kimg: ADA's 0.6, 4 and 500.
        threshold: where a real image's score counts as "real" (0; 0.5 for LSGAN).

    Raises:
        ValueError: bad policy, p outside [0, 1], target outside [-1, 1], interval or speed below 1.
    """

    def __init__(self, policy: list | tuple = POLICIES, p: float = 0.0, target: float = 0.6, interval: int = 4,
                 speed_kimg: float = 500.0, threshold: float = 0.0):
        super().__init__(policy, p)
        if not -1.0 <= target <= 1.0 or interval < 1 or speed_kimg <= 0:
            raise ValueError(f"target in [-1, 1], interval >= 1 and speed_kimg > 0; got {target}, {interval}, "
                             f"{speed_kimg}")
        self.target, self.interval, self.speed_kimg, self.threshold = float(target), int(interval), float(speed_kimg), \
            float(threshold)
        self.signs, self.count, self.iterations, self.last_signal = 0.0, 0, 0, float("nan")

    def observe_real(self, scores: Tensor) -> None:
        """Add the discriminator's scores of real images (any shape, N first) to r_t."""
        scores = scores.detach().float()
        self.signs += float(torch.sign(scores - self.threshold).mean(dim=tuple(range(1, scores.ndim))).sum()) \
            if scores.ndim > 1 else float(torch.sign(scores - self.threshold).sum())
        self.count += scores.shape[0]

    def after_iteration(self) -> None:
        """Count an iteration; every ``interval``-th, move p by the rule above."""
        self.iterations += 1
        if self.iterations % self.interval or not self.count:
            return
        self.last_signal = self.signs / self.count
        step = math.copysign(self.count / (self.speed_kimg * 1000), self.last_signal - self.target)
        if self.last_signal == self.target:
            step = 0.0
        self.p = min(1.0, max(0.0, self.p + step))
        self.signs, self.count = 0.0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "signs": self.signs, "count": self.count, "iterations": self.iterations,
                "last_signal": self.last_signal}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.signs, self.count = float(state["p"]), float(state["signs"]), int(state["count"])
        self.iterations, self.last_signal = int(state["iterations"]), float(state["last_signal"])

    def __repr__(self) -> str:
        return f"AdaptiveAugment(policy={list(self.policy)}, p={self.p:.4f}, target={self.target})"


@hookimpl
def unpaired_components():
    return [Component("augmentation", "diffaugment", DiffAugment), Component("augmentation", "ada", AdaptiveAugment)]
