"""``aligned_folder``: image pairs in the pix2pix layout, A and B side by side in one file.

Layout (the reference's ``aligned_dataset.py``, Isola et al., CVPR 2017): ``root/train/``,
``root/test/`` (and ``root/val/``), each image holding A on its left half and B on its right
half (e.g. the pix2pix ``facades``, ``edges2shoes``, ``maps`` downloads).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from unpaired.data import IMAGE_EXTENSIONS, AlignedPairs, domain_channels, image_transform, paired_transform, read_image
from unpaired.errors import DataError

LAYOUT = "root/train, root/test (and root/val), each image A|B side by side"


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder``, sorted by name, hidden files skipped.

    Raises:
        DataError: the folder is missing or holds no readable image type; names it.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found. Expected the pix2pix aligned layout {LAYOUT}.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        others = sorted(p.name for p in folder.iterdir())[:5]
        raise DataError(
            f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found"
            + (f"; it holds e.g. {', '.join(others)}" if others else " (the folder is empty)")
            + ". Add images or point the dataset root elsewhere."
        )
    return files


class SideBySide:
    """Reads pair i of a list of side-by-side files (picklable: a ``load`` for :class:`AlignedPairs`).

    ``loader(i) -> (img_a, img_b, name, name)``: uint8 (C_A, H, w2) and (C_B, H, w2) with
    w2 = W // 2; the left half is A unless ``swap`` (direction BtoA). An odd width loses its last
    column, so both halves have the same size.

    Raises:
        DataError: the image is narrower than 2 pixels (names the file), or cannot be read.
    """

    def __init__(self, files: list[Path], channels_a: int, channels_b: int, swap: bool = False):
        self.files, self.channels_a, self.channels_b, self.swap = files, channels_a, channels_b, swap

    def __len__(self) -> int:
        return len(self.files)

    def __call__(self, i: int) -> tuple[Tensor, Tensor, str, str]:
        path = self.files[i]
        img = read_image(path, 3 if 3 in (self.channels_a, self.channels_b) else 1)
        w2 = img.shape[-1] // 2
        if w2 == 0:
            raise DataError(f"{path}: {img.shape[-1]} pixel(s) wide, cannot hold A and B side by side.")
        left, right = img[..., :w2], img[..., w2 : 2 * w2]
        a, b = (right, left) if self.swap else (left, right)
        return _channels(a, self.channels_a), _channels(b, self.channels_b), path.name, path.name


def _channels(img: Tensor, channels: int) -> Tensor:
    if img.shape[0] == channels:
        return img.contiguous()
    return v2.functional.rgb_to_grayscale(img) if channels == 1 else img.expand(3, -1, -1).contiguous()


class HalfDomain(Dataset):
    """One half of every pair; items ``(image (C, crop, crop) in [-1, 1], file name)``."""

    def __init__(self, loader: SideBySide, name: str, transform):
        self.loader, self.index, self.transform = loader, "AB".index(name), transform

    def __len__(self) -> int:
        return len(self.loader)

    def __getitem__(self, i: int):
        item = self.loader(i)
        return self.transform(item[self.index]), item[2 + self.index]


class AlignedFolder:
    """Paired images in the pix2pix aligned layout: ``root/{train,test,val}/``, A|B in each file.

    Args:
        root: dataset folder (e.g. ``datasets/facades``).
        direction: ``AtoB`` (A is the left half) or ``BtoA`` (A is the right half).
        channels: 3 (RGB) or 1 (grey), or a pair [C_A, C_B]; a file is read as RGB when either
            half is RGB, and a grey half is converted from it (ITU-R 601 luma), as the reference.
        load_size, crop_size, flip: "resize_and_crop" (286, 256, True) with one crop and one flip
            for both halves of a pair.

    Split: w2 = W // 2, left = [:, :, :w2], right = [:, :, w2:2*w2]. Where this differs from the
    reference: the reference gives the right half all remaining columns (one more for an odd
    width) and then resizes both halves to a load_size x load_size square; here each half keeps its
    aspect ratio (shorter side resized to load_size, as :func:`unpaired.data.image_transform` does
    for unpaired data), so the halves must be the same size and an odd width drops its last
    column. For the square halves of the usual pix2pix datasets both give the same result.

    Attributes:
        aligned: always True.
    """

    aligned = True

    def __init__(self, root: str = "???", direction: str = "AtoB", channels: int | list = 3, load_size: int = 286,
                 crop_size: int = 256, flip: bool = True):
        domain_channels(channels, "A")  # fail early on a bad value
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
        if crop_size > load_size:
            raise ValueError(f"crop_size {crop_size} is larger than load_size {load_size}")
        self.root, self.direction, self.channels = Path(root), direction, channels
        self.load_size, self.crop_size, self.flip = load_size, crop_size, flip

    def _loader(self, split: str) -> SideBySide:
        files = list_images(self.root / split)
        return SideBySide(files, domain_channels(self.channels, "A"), domain_channels(self.channels, "B"),
                          swap=self.direction == "BtoA")

    def domain(self, name: str, split: str) -> Dataset:
        """Half ``name`` of every file of ``root/split``, sorted by file name (the same order for A and B)."""
        if name not in ("A", "B"):
            raise ValueError(f"domain is A or B, got {name!r}")
        transform = image_transform(self.load_size, self.crop_size, self.flip, train=split == "train")
        return HalfDomain(self._loader(split), name, transform)

    def pairs(self, split: str, seed: int = 0) -> AlignedPairs:
        """The pairs of ``root/split``, one crop and flip for both halves."""
        loader = self._loader(split)
        transform = paired_transform(self.load_size, self.crop_size, self.flip, train=split == "train")
        return AlignedPairs(loader, len(loader), transform, seed=seed)
