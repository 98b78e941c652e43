"""``aligned_folder``: image pairs for paired training (pix2pix, Isola et al., CVPR 2017).

Two layouts:

- ``side_by_side`` (the reference's ``aligned_dataset.py``; the pix2pix ``facades``,
  ``edges2shoes``, ``maps`` downloads): ``root/train/``, ``root/test/`` (and ``root/val/``), each
  image holding A on its left half and B on its right half.
- ``folders``: ``root/trainA/`` and ``root/trainB/`` (and ``testA/``, ``testB/``) with the same
  relative paths in both: ``trainA/x/1.png`` pairs with ``trainB/x/1.png`` (the unaligned layout,
  with pairs).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from unpaired.data.pairs import AlignedPairs
from unpaired.domains import domain_channels
from unpaired.data.io import read_image
from unpaired.errors import DataError
from unpaired.data.preprocess import check_preprocess, image_transform, paired_transform

from .folder import folder_images

LAYOUTS = {"side_by_side": "root/train, root/test (and root/val), each image A|B side by side",
           "folders": "root/trainA + root/trainB, root/testA + root/testB, the same relative paths in A and B"}


def _channels(img: Tensor, channels: int) -> Tensor:
    if img.shape[0] == channels:
        return img.contiguous()
    return v2.functional.rgb_to_grayscale(img) if channels == 1 else img.expand(3, -1, -1).contiguous()


class SideBySide:
    """Reads pair i of side-by-side files (picklable: a ``load`` for :class:`AlignedPairs`).

    ``loader(i) -> (img_a, img_b, name, name)``: (C_A, H, w2) and (C_B, H, w2) with w2 = W // 2
    (uint8, or float in [0, 1] for 16-bit/float files); the left half is A unless ``swap``
    (direction BtoA). An odd width loses its last column, so both halves have the same size;
    ``name`` is the path relative to ``folder``.

    Attributes:
        files: one path per pair (the data check removes unreadable ones when told to skip them).

    Raises:
        DataError: the image is narrower than 2 pixels (names the file), or cannot be read.
    """

    def __init__(self, folder: Path, files: list[Path], channels_a: int, channels_b: int, swap: bool = False):
        self.folder, self.files, self.channels_a, self.channels_b, self.swap = folder, files, channels_a, channels_b, swap

    def __len__(self) -> int:
        return len(self.files)

    def __call__(self, i: int) -> tuple[Tensor, Tensor, str, str]:
        path = self.files[i]
        img = read_image(path, 3 if 3 in (self.channels_a, self.channels_b) else 1)
        w2 = img.shape[-1] // 2
        if w2 == 0:
            raise DataError(f"{path}: {img.shape[-1]} pixel(s) wide, cannot hold A and B side by side.",
                            key=str(path), code="too-narrow")
        left, right = img[..., :w2], img[..., w2 : 2 * w2]
        a, b = (right, left) if self.swap else (left, right)
        name = path.relative_to(self.folder).as_posix()
        return _channels(a, self.channels_a), _channels(b, self.channels_b), name, name


class FolderPairs:
    """Reads pair i from two folders with matching relative paths (picklable, like :class:`SideBySide`).

    ``loader(i) -> (img_a, img_b, name, name)`` with ``name`` the shared relative path; direction
    BtoA passes the folders swapped.

    Attributes:
        files: one ``(path_a, path_b)`` per pair.

    Raises:
        DataError: a file in one folder has no partner in the other (lists up to five of each side);
            on reading, a pair whose images differ in size (names both files).
    """

    def __init__(self, folder_a: Path, folder_b: Path, channels_a: int, channels_b: int):
        layout = LAYOUTS["folders"]
        rel_a = {p.relative_to(folder_a).as_posix(): p for p in folder_images(folder_a, layout)}
        rel_b = {p.relative_to(folder_b).as_posix(): p for p in folder_images(folder_b, layout)}
        only_a, only_b = sorted(rel_a.keys() - rel_b.keys()), sorted(rel_b.keys() - rel_a.keys())
        if only_a or only_b:
            raise DataError(
                f"{folder_a} and {folder_b}: pairs need the same relative paths in both folders; "
                + (f"only in {folder_a.name}: {', '.join(only_a[:5])}{' ...' if len(only_a) > 5 else ''} ({len(only_a)}); " if only_a else "")
                + (f"only in {folder_b.name}: {', '.join(only_b[:5])}{' ...' if len(only_b) > 5 else ''} ({len(only_b)}); " if only_b else "")
                + "rename or remove them.", key=str(folder_a), code="unpaired-files")
        self.folder = folder_a
        self.files = [(rel_a[k], rel_b[k]) for k in sorted(rel_a)]
        self.channels_a, self.channels_b = channels_a, channels_b

    def __len__(self) -> int:
        return len(self.files)

    def __call__(self, i: int) -> tuple[Tensor, Tensor, str, str]:
        path_a, path_b = self.files[i]
        name = path_a.relative_to(self.folder).as_posix()
        img_a, img_b = read_image(path_a, self.channels_a), read_image(path_b, self.channels_b)
        if img_a.shape[-2:] != img_b.shape[-2:]:  # named here, where both folders are known
            (ha, wa), (hb, wb) = img_a.shape[-2:], img_b.shape[-2:]
            raise DataError(f"{path_a} ({ha}x{wa}) and {path_b} ({hb}x{wb}): the two images of a pair differ in "
                            "size; resize one to the other's.", key=str(path_a), code="pair-sizes")
        return img_a, img_b, name, name


class HalfDomain(Dataset):
    """One side of every pair; items ``(image (C, h, w) in [-1, 1], relative path)``."""

    def __init__(self, loader: SideBySide | FolderPairs, name: str, transform):
        self.loader, self.index, self.transform = loader, "AB".index(name), transform

    def __len__(self) -> int:
        return len(self.loader)

    def raw(self, i: int):
        """Item ``i`` before preprocessing: ``(image (C, H, W) uint8 or float in [0, 1], name)``."""
        item = self.loader(i)
        return item[self.index], item[2 + self.index]

    def __getitem__(self, i: int):
        item = self.loader(i)
        try:
            return self.transform(item[self.index]), item[2 + self.index]
        except ValueError as err:  # e.g. an image smaller than the crop
            raise DataError(f"{item[2]}: {err}.", key=str(item[2]), code="unreadable") from err


class AlignedFolder:
    """Paired images: A|B side by side in each file (pix2pix), or two folders of matching files.

    Args:
        root: dataset folder (e.g. ``datasets/facades``).
        layout: ``side_by_side`` or ``folders`` (see the module docstring).
        direction: ``AtoB`` (A is the left half, or the ``A`` folder) or ``BtoA`` (swapped), the
            reference's ``--direction``.
        channels: 3 (RGB) or 1 (grey), or a pair [C_A, C_B]; a side-by-side file is read as RGB
            when either half is RGB, and a grey half is converted from it (ITU-R 601 luma).
        load_size, crop_size, flip, preprocess: as ``unaligned_folder``
            (:mod:`unpaired.data.preprocess`), with one crop and one flip for both images of a pair.

    Split of a side-by-side file: w2 = W // 2, left = [:, :, :w2], right = [:, :, w2:2*w2]. The
    reference gives the right half all remaining columns (one more for an odd width); here an odd
    width drops its last column so both halves are the same size. With ``preprocess:
    resize_and_crop`` both then resize to the same square, as the reference.

    Attributes:
        aligned: always True.
    """

    aligned = True

    def __init__(self, root: str = "???", direction: str = "AtoB", channels: int | list = 3,
                 load_size: int | list = 286, crop_size: int | list = 256, flip: bool = True,
                 preprocess: str = "scale_shorter_side_and_crop", layout: str = "side_by_side"):
        domain_channels(channels, "A")  # fail early on a bad value
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        check_preprocess(preprocess, load_size, crop_size)
        self.root, self.direction, self.channels, self.layout = Path(root), direction, channels, layout
        self.load_size, self.crop_size, self.flip, self.preprocess = load_size, crop_size, flip, preprocess

    def _loader(self, split: str) -> SideBySide | FolderPairs:
        ca, cb, swap = domain_channels(self.channels, "A"), domain_channels(self.channels, "B"), self.direction == "BtoA"
        if self.layout == "folders":
            a, b = self.root / f"{split}A", self.root / f"{split}B"
            return FolderPairs(b, a, ca, cb) if swap else FolderPairs(a, b, ca, cb)
        folder = self.root / split
        return SideBySide(folder, folder_images(folder, LAYOUTS["side_by_side"]), ca, cb, swap)

    def domain(self, name: str, split: str) -> Dataset:
        """Side ``name`` of every pair of ``split``, sorted by relative path (the same order for A and B)."""
        if name not in ("A", "B"):
            raise ValueError(f"domain is A or B, got {name!r}")
        transform = image_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        return HalfDomain(self._loader(split), name, transform)

    def pairs(self, split: str, seed: int = 0) -> AlignedPairs:
        """The pairs of ``split``, one crop and flip for both images."""
        loader = self._loader(split)
        transform = paired_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        return AlignedPairs(loader, len(loader), transform, seed=seed)
