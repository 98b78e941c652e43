"""Draw docs/preprocess.png: one non-square input and what each preprocessing option gives the network.

Usage: python scripts/preprocess_figure.py [--out docs/preprocess.png]

The input is drawn here (a grid of circles, 118x198), so any stretching shows as ellipses.
Test-time settings (centred crop, no flip) so the picture is reproducible.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from unpaired.data.preprocess import PREPROCESS, image_transform

LOAD, CROP = 100, 56


def input_image(h: int = 118, w: int = 198) -> torch.Tensor:
    """uint8 (3, h, w): circles of radius 18 on a 40-pixel grid, coloured by column."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inside = ((x % 40 - 20) ** 2 + (y % 40 - 20) ** 2) < 18**2
    img = torch.full((3, h, w), 235, dtype=torch.uint8)
    colour = torch.stack([(x * 255 // w), 80 + 0 * x, 255 - (x * 255 // w)]).to(torch.uint8)
    return torch.where(inside, colour, img)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/preprocess.png")
    args = p.parse_args()
    img = input_image()
    panels = [(f"input {img.shape[1]}x{img.shape[2]} (H x W)", img.float() / 127.5 - 1)]
    for name in PREPROCESS:
        out = image_transform(LOAD, CROP, False, False, name)(img)
        panels.append((f"{name}\n{out.shape[1]}x{out.shape[2]}", out))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.6),
                             gridspec_kw={"width_ratios": [t.shape[2] for _, t in panels]})
    for ax, (title, t) in zip(axes, panels):
        ax.imshow(((t + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(title, fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"load_size {LOAD}, crop_size {CROP} (test time: centred crop)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
