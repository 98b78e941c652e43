"""Folder datasets: ``unaligned_folder`` (the CycleGAN layout trainA/, trainB/, testA/, testB/),
``domain_folders`` (N domains, one folder each: StarGAN v2's AFHQ layout train/cat/, train/dog/,
...) and ``single_folder`` (one folder of images of one domain, for translation)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from unpaired.data.multidomain import MultiDomainData
from unpaired.data.io import IMAGE_EXTENSIONS, list_images, read_image, skipped_note
from unpaired.domains import domain_channels
from unpaired.errors import DataError, warn
from unpaired.data.preprocess import check_preprocess, image_transform


def folder_images(folder: Path, layout: str) -> list[Path]:
    """The images under ``folder`` (:func:`unpaired.data.io.list_images`), warning once about the other files.

    Raises:
        DataError: the folder is missing (names the expected ``layout``) or holds no image.
    """
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: a file, not a folder. Expected the layout {layout}.",
                        key=str(folder), code="not-a-folder")
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found. Expected the layout {layout}.", key=str(folder), code="no-folder")
    files, others = list_images(folder)
    if not files:
        names = [p.relative_to(folder).as_posix() for p in others[:5]]
        raise DataError(
            f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found"
            + (f"; it holds e.g. {', '.join(names)}" if names else " (the folder is empty)")
            + ". Add images or point the dataset root elsewhere.",
            key=str(folder), code="no-images",
        )
    if others:
        warn(skipped_note(folder, others))
    return files


class FolderDomain(Dataset):
    """The images of one folder and its subfolders, sorted by relative path; items
    ``(image (C, h, w) in [-1, 1], relative path)``.

    Attributes:
        files: the image paths (:func:`unpaired.data.io.list_images`); the training data check
            (:mod:`unpaired.datacheck`) removes unreadable ones from it when told to skip them.

    Raises:
        DataError: the folder is missing or holds no image; on reading, a file that cannot be
            decoded or is smaller than the crop (names it).
    """

    def __init__(self, folder: Path, channels: int, transform, layout: str = "a folder of images"):
        self.folder, self.channels, self.transform = folder, channels, transform
        self.files = folder_images(folder, layout)

    def __len__(self) -> int:
        return len(self.files)

    def raw(self, i: int):
        """Item ``i`` before preprocessing: ``(image (C, H, W) uint8 or float in [0, 1], name)``."""
        return read_image(self.files[i], self.channels), self.files[i].relative_to(self.folder).as_posix()

    def __getitem__(self, i: int):
        path = self.files[i]
        image = read_image(path, self.channels)
        try:
            return self.transform(image), path.relative_to(self.folder).as_posix()
        except ValueError as err:  # e.g. an image smaller than the crop
            raise DataError(f"{path}: {err}.", key=str(path), code="unreadable") from err


class UnalignedFolder:
    """Two image domains in the reference's unaligned layout: ``root/{train,test}{A,B}/``.

    Args:
        root: dataset folder (e.g. ``datasets/horse2zebra``).
        channels: 3 (RGB) or 1 (grey), or a pair [C_A, C_B]; files of other kinds are converted
            (grey to RGB, RGBA without its alpha; 16-bit and float keep their precision).
        load_size, crop_size: pixels, one number or ``[H, W]`` (see :mod:`unpaired.data.preprocess`).
        flip: random horizontal flip when training.
        preprocess: one of :data:`unpaired.data.preprocess.PREPROCESS`; the default keeps the aspect
            ratio (shorter side to load_size); ``resize_and_crop`` is the reference's square resize.

    Source: Zhu et al., ICCV 2017; the reference's ``unaligned_dataset.py``.
    """

    layout = "root/trainA, root/trainB, root/testA, root/testB"

    def __init__(self, root: str = "???", channels: int | list = 3, load_size: int | list = 286,
                 crop_size: int | list = 256, flip: bool = True, preprocess: str = "scale_shorter_side_and_crop"):
        domain_channels(channels, "A")  # fail early on a bad value
        check_preprocess(preprocess, load_size, crop_size)
        self.root, self.channels = Path(root), channels
        self.load_size, self.crop_size, self.flip, self.preprocess = load_size, crop_size, flip, preprocess

    def domain(self, name: str, split: str) -> Dataset:
        transform = image_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        return FolderDomain(self.root / f"{split}{name}", domain_channels(self.channels, name), transform, self.layout)


class DomainFolders(MultiDomainData):
    """N image domains, one folder each, as StarGAN v2's AFHQ and CelebA-HQ ship:
    ``root/train/<domain>/`` and ``root/test/<domain>/`` (the authors call the test split ``val``:
    ``test_split: val``). The domains are the training split's subfolders, sorted by name; labels
    follow that order. Samples and labels: :mod:`unpaired.data.multidomain`.

    Args:
        root: dataset folder (e.g. ``data/afhq``).
        channels: 3 (RGB) or 1 (grey).
        load_size, crop_size, flip, preprocess: as ``unaligned_folder``; the default resizes to
            256x256 and flips, as the authors' loader does (without its random resized crop).
        test_split: the folder name of the test split.

    Raises:
        DataError: no ``root/train`` folder, or fewer than two domain folders in it.
    """

    def __init__(self, root: str = "???", channels: int = 3, load_size: int | list = 256, crop_size: int | list = 256,
                 flip: bool = True, preprocess: str = "resize_and_crop", test_split: str = "test"):
        domain_channels(channels, "A")
        check_preprocess(preprocess, load_size, crop_size)
        self.root, self.channels, self.test_split = Path(root), channels, test_split
        self.load_size, self.crop_size, self.flip, self.preprocess = load_size, crop_size, flip, preprocess
        train = self.root / "train"
        self.domain_names = sorted(p.name for p in train.iterdir() if p.is_dir()) if train.is_dir() else []
        if len(self.domain_names) < 2:
            raise DataError(f"{train}: expected one folder per domain (at least two), e.g. {train}/cat and {train}/dog.",
                            key=str(train), code="no-domains")

    def domain(self, name, split: str) -> Dataset:
        k = self.label(name)
        folder = self.root / (self.test_split if split == "test" else split) / self.domain_names[k]
        transform = image_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        return FolderDomain(folder, self.channels, transform, "root/train/<domain>, root/test/<domain>")


class SingleFolder:
    """One domain's images in one folder (and its subfolders), for translation: the reference's
    ``single_dataset``. Every split of domain ``A`` is the whole folder; there is no domain B.

    Args:
        root: the folder.
        channels: 3 (RGB) or 1 (grey).
        preprocess: default ``none``: each side rounded to a multiple of 4 (the reference's test
            default); a cropping option with ``load_size``/``crop_size`` gives fixed sizes.
        load_size, crop_size: as :class:`UnalignedFolder`.

    Raises:
        DataError: on ``domain("B", ...)``: a single folder holds one domain.
    """

    def __init__(self, root: str = "???", channels: int = 3, preprocess: str = "none", load_size: int | list = 256,
                 crop_size: int | list = 256):
        domain_channels(channels, "A")
        check_preprocess(preprocess, load_size, crop_size)
        self.root, self.channels, self.preprocess = Path(root), channels, preprocess
        self.load_size, self.crop_size = load_size, crop_size

    def domain(self, name: str, split: str) -> Dataset:
        if name != "A":
            raise DataError(f"{self.root}: single_folder holds one domain (A); translate it AtoB, or use "
                            "unaligned_folder for two domains.", key=str(self.root), code="one-domain")
        transform = image_transform(self.load_size, self.crop_size, False, False, self.preprocess)
        return FolderDomain(self.root, domain_channels(self.channels, "A"), transform)
