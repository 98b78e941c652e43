"""``unaligned_folder``: images in the CycleGAN folder layout (trainA/, trainB/, testA/, testB/)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from unpaired.data import IMAGE_EXTENSIONS, domain_channels, image_transform, list_images, read_image, skipped_note
from unpaired.errors import DataError, warn

class FolderDomain(Dataset):
    """The images of one folder and its subfolders, sorted by relative path; items
    ``(image (C, H, W) in [-1, 1], relative path)`` (:func:`unpaired.data.list_images`).

    Files that are not images are skipped with one warning that counts them and names a few.

    Raises:
        DataError: the folder is missing or holds no image.
    """

    def __init__(self, folder: Path, channels: int, transform):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found. Expected the layout root/trainA, root/trainB, root/testA, root/testB.")
        self.folder = folder
        self.files, others = list_images(folder)
        names = [p.relative_to(folder).as_posix() for p in others[:5]]
        if not self.files:
            raise DataError(
                f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found"
                + (f"; it holds e.g. {', '.join(names)}" if names else " (the folder is empty)")
                + ". Add images or point the dataset root elsewhere."
            )
        if others:
            warn(skipped_note(folder, others))
        self.channels, self.transform = channels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.files[i]
        return self.transform(read_image(path, self.channels)), path.relative_to(self.folder).as_posix()


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
