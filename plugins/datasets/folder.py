"""``unaligned_folder``: images in the CycleGAN folder layout (trainA/, trainB/, testA/, testB/)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from unpaired.data import IMAGE_EXTENSIONS, domain_channels, image_transform, read_image
from unpaired.errors import DataError

class FolderDomain(Dataset):
    """The images of one folder, sorted by name; items ``(image (C, H, W) in [-1, 1], file name)``.

    Raises:
        DataError: the folder is missing or holds no readable image type.
    """

    def __init__(self, folder: Path, channels: int, transform):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found. Expected the layout root/trainA, root/trainB, root/testA, root/testB.")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
        if not self.files:
            others = sorted(p.name for p in folder.iterdir())[:5]
            raise DataError(
                f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found"
                + (f"; it holds e.g. {', '.join(others)}" if others else " (the folder is empty)")
                + ". Add images or point the dataset root elsewhere."
            )
        self.channels, self.transform = channels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.files[i]
        return self.transform(read_image(path, self.channels)), path.name


class UnalignedFolder:
    """Two image domains in the reference's unaligned layout: ``root/{train,test}{A,B}/``.

    Args:
        root: dataset folder (e.g. ``datasets/horse2zebra``).
        channels: 3 (RGB) or 1 (grey), or a pair [C_A, C_B]; files of other kinds are converted
            (grey to RGB, RGBA without its alpha, 16-bit to 8-bit).
        load_size, crop_size, flip: the reference "resize_and_crop" preprocessing (286, 256, True).

    Source: Zhu et al., ICCV 2017; the reference's ``unaligned_dataset.py``.
    """

    def __init__(self, root: str = "???", channels: int | list = 3, load_size: int = 286, crop_size: int = 256, flip: bool = True):
        domain_channels(channels, "A")  # fail early on a bad value
        if crop_size > load_size:
            raise ValueError(f"crop_size {crop_size} is larger than load_size {load_size}")
        self.root, self.channels = Path(root), channels
        self.load_size, self.crop_size, self.flip = load_size, crop_size, flip

    def domain(self, name: str, split: str) -> Dataset:
        transform = image_transform(self.load_size, self.crop_size, self.flip, train=split == "train")
        return FolderDomain(self.root / f"{split}{name}", domain_channels(self.channels, name), transform)
