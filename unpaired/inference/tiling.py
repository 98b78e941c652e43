"""Tiled inference: a generator over an image too large to translate in one pass.

The image is cut into overlapping tiles, each padded to the networks' size divisor, translated,
and blended back with weights that ramp linearly across the overlaps, so no seam shows and the
output has exactly the input's size. Peak memory follows the tile size, not the image's.

Instance normalisation (the CycleGAN generators') normalises each tile by its own statistics,
so a tile's colours can drift from what the whole image would give; the overlap blending hides
the steps, and a larger tile keeps the statistics closer (docs/translate.md measures both).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``size`` pixels, consecutive tiles sharing
    at least ``overlap`` pixels; the last tile ends at ``size``.

    Raises:
        ValueError: ``overlap`` is not smaller than ``tile``.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"the overlap ({overlap}) must be at least 0 and smaller than the tile ({tile})")
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def ramp(length: int, ramp_before: int, ramp_after: int) -> Tensor:
    """1-D blending weights (length,): rising linearly over the first ``ramp_before`` pixels and
    falling over the last ``ramp_after`` (strictly positive everywhere), 1 in between."""
    w = torch.ones(length)
    if ramp_before:
        w[:ramp_before] = torch.arange(1, ramp_before + 1) / (ramp_before + 1)
    if ramp_after:
        w[length - ramp_after :] = torch.minimum(w[length - ramp_after :], torch.arange(ramp_after, 0, -1) / (ramp_after + 1))
    return w


def pad_to(x: Tensor, divisor: int) -> Tensor:
    """``x`` (N, C, H, W) padded at the bottom and right to multiples of ``divisor`` (reflection,
    or replication where the image is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = -h % divisor, -w % divisor
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")


def translate_tiled(run: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, divisor: int) -> Tensor:
    """``run`` over overlapping tiles of ``x``, blended back.

    Args:
        run: the translation of a padded batch (N, C, h, w) -> (N, C_out, h, w), on its device.
        x: images (N, C, H, W) in [-1, 1], on ``run``'s device.
        tile: tile side in pixels (each tile is padded up to a multiple of ``divisor``).
        overlap: pixels shared by neighbouring tiles, blended with linear ramps.
        divisor: the networks' size divisor.

    Returns:
        (N, C_out, H, W) on the CPU, float32.

    Raises:
        ValueError: a bad tile/overlap pair (see :func:`tile_starts`).
    """
    n, _, h, w = x.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = weight = None
    for iy, y0 in enumerate(ys):
        th = min(tile, h)
        wy = ramp(th, (ys[iy - 1] + th - y0) if iy else 0, (y0 + th - ys[iy + 1]) if iy + 1 < len(ys) else 0)
        for ix, x0 in enumerate(xs):
            tw = min(tile, w)
            wx = ramp(tw, (xs[ix - 1] + tw - x0) if ix else 0, (x0 + tw - xs[ix + 1]) if ix + 1 < len(xs) else 0)
            y = run(pad_to(x[..., y0 : y0 + th, x0 : x0 + tw], divisor))[..., :th, :tw].float().cpu()
            if out is None:
                out, weight = torch.zeros(n, y.shape[1], h, w), torch.zeros(h, w)
            wt = wy[:, None] * wx[None, :]
            out[..., y0 : y0 + th, x0 : x0 + tw] += y * wt
            weight[y0 : y0 + th, x0 : x0 + tw] += wt
    return out / weight
