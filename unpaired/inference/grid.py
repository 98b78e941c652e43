"""Sample grids: a recipe's ``samples`` images on fixed test images, as one PNG."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torchvision.transforms import v2
from torchvision.utils import make_grid

from unpaired.errors import DataError, warn
from unpaired.inference.translator import write_image
from unpaired.domains import DATA_IMAGES
from unpaired.recipe.graph import ImageGraph


@torch.no_grad()
def compute_images(graph: ImageGraph, nets: dict, names, inputs: dict) -> dict:
    """The named images (and the images they are made from), networks in eval mode.

    ``inputs`` maps data image names (``real_A``, ``real_B``) to batches (N, C, H, W) in [-1, 1].
    Random values (style codes) are drawn from a generator seeded 0: every grid of a run shows the
    same draws, so grids over training compare.
    """
    modes = {n: net.training for n, net in nets.items()}
    for net in nets.values():
        net.eval()
    try:
        return graph.compute(names, nets, inputs, torch.Generator().manual_seed(0))
    finally:
        for n, net in nets.items():
            net.train(modes[n])


def fixed_inputs(data, count: int) -> dict:
    """The first ``count`` test images of each domain (the training images of a domain that has
    no test split, with a warning), as CPU batches (N, C, H, W) in [-1, 1]. Images of different
    sizes (``preprocess: scale_width`` or ``none``) are centre-cropped to the smallest height and
    width among them. A dataset with ``sample_inputs(count)`` (a multi-domain one) gives its own."""
    if hasattr(data, "sample_inputs"):
        return data.sample_inputs(count)
    images = {}
    for key in DATA_IMAGES:
        try:
            ds = data.domain(key[-1], "test")
        except DataError as err:
            warn(f"{err} Sample grids use training images of domain {key[-1]} instead.")
            ds = data.domain(key[-1], "train")
        images[key] = [ds[i][0] for i in range(min(count, len(ds)))]
    n = min(len(v) for v in images.values())
    size = [min(img.shape[d] for v in images.values() for img in v[:n]) for d in (-2, -1)]
    return {k: torch.stack([v2.functional.center_crop(img, size) for img in v[:n]]) for k, v in images.items()}


def save_grid(recipe: DictConfig, graph: ImageGraph, nets: dict, inputs: dict, path: Path) -> torch.Tensor:
    """Write a grid, one row per name in ``recipe.samples``, one column per input image.

    ``inputs``: data images, e.g. from :func:`fixed_inputs`, on the networks' device.

    Grey rows are shown as RGB when other rows are RGB; images under 64 pixels are enlarged
    (nearest neighbour) so that they can be seen. Returns the grid (3, H, W) in [0, 1].

    Raises:
        DataError: the file cannot be written (a full disk), code ``write-failed``; no partial file is left.
    """
    images = compute_images(graph, nets, recipe.samples, inputs)
    rows = [images[name].float().cpu() for name in recipe.samples]
    scale = -(-64 // min(rows[0].shape[-2:]))
    if scale > 1:
        rows = [F.interpolate(r, scale_factor=scale, mode="nearest") for r in rows]
    if any(r.shape[1] == 3 for r in rows):
        rows = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
    grid = make_grid(torch.cat(rows), nrow=rows[0].shape[0], normalize=True, value_range=(-1, 1), pad_value=1.0)
    write_image(grid * 2 - 1, path)  # whole or not at all
    return grid
