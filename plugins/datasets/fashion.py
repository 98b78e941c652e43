"""``fashion_mnist``: two Fashion-MNIST classes as domains A and B (default sneaker -> ankle boot).

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017; MIT licence): 28x28 grey images of 10 clothing
classes. A subset (classes 7 "Sneaker" and 9 "Ankle boot": 1,000 train and 200 test images each)
ships inside this package, so the demo needs no download. The full set is read from its IDX files,
e.g. Debian's ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unpaired.data.preprocess import check_preprocess, image_transform
from unpaired.errors import DataError

EMBEDDED = Path(__file__).parent / "data" / "fashion_sneaker_boot.npz"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_FILES = {"train": "train-{}-idx{}-ubyte", "test": "t10k-{}-idx{}-ubyte"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a numpy array (LeCun et al.'s MNIST format).

    torchvision's reader does not open gzip files, and these are stored gzipped.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # e.g. a truncated or corrupt .gz download
        raise DataError(f"{path}: cannot read IDX file ({err}).", key=str(path), code="unreadable") from err
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 8:
        raise DataError(f"{path}: not an unsigned-byte IDX file.", key=str(path), code="not-idx")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header.", key=str(path), code="truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated IDX file ({arr.size} values for shape {shape}).",
                        key=str(path), code="truncated")
    return arr.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for cand in (folder / stem, folder / (stem + ".gz")):
        if cand.is_file():
            return cand
    raise DataError(
        f"{folder}: missing {stem}[.gz]. Install the full set with 'apt-get install dataset-fashion-mnist' "
        "(files in /usr/share/datasets/fashion-mnist) or set data.args.source: embedded.",
        key=str(folder), code="missing-file",
    )


def load_split(source: str, split: str, label: int) -> np.ndarray:
    """uint8 images (N, 28, 28) of one class and split, from ``"embedded"`` or an IDX folder."""
    if source == "embedded":
        key = f"{split}_{label}"
        with np.load(EMBEDDED) as data:
            if key not in data:
                raise DataError(f"the embedded subset holds classes 7 and 9 only, not {label}; use the full set "
                                "(source: /usr/share/datasets/fashion-mnist).", key="data.args.class_A", code="not-embedded")
            return data[key]
    images, labels = _idx_split(str(Path(source).resolve()), split)
    return images[labels == label]


@functools.lru_cache(maxsize=2)
def _idx_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's images and labels, read once: a dataset asks for each class, training and sampling
    many times, and decompressing the 60,000 training images takes a second each time."""
    folder = Path(folder)
    return (read_idx(_find(folder, IDX_FILES[split].format("images", 3))),
            read_idx(_find(folder, IDX_FILES[split].format("labels", 1))))


class ArrayDomain(Dataset):
    """Images from a uint8 array (N, H, W); items ``(image (1, h, w) in [-1, 1], name)``."""

    def __init__(self, images: np.ndarray, prefix: str, transform):
        self.images, self.prefix, self.transform = torch.from_numpy(np.ascontiguousarray(images)), prefix, transform

    def __len__(self) -> int:
        return len(self.images)

    def raw(self, i: int):
        """Item ``i`` before preprocessing: ``(image (1, 28, 28) uint8, name)``."""
        return self.images[i][None], f"{self.prefix}_{i:05d}.png"

    def __getitem__(self, i: int):
        return self.transform(self.images[i][None]), f"{self.prefix}_{i:05d}.png"


class FashionMNIST:
    """Two Fashion-MNIST classes as unpaired domains.

    Args:
        source: ``"embedded"`` (the packaged subset) or a folder of Fashion-MNIST IDX files.
        class_A, class_B: class labels of domains A and B (7 Sneaker, 9 Ankle boot).
        channels: 1 (the data is grey).
        load_size, crop_size, flip: "resize_and_crop" as the reference (32 -> 28 keeps its 286/256 ratio).
        limit: use at most this many images per domain and split (0 = all), for quick runs.
    """

    #: The preprocessing, always the reference's: also what translation resizes to (the training scale).
    preprocess = "resize_and_crop"

    def __init__(self, source: str = "embedded", class_A: int = 7, class_B: int = 9, channels: int = 1,
                 load_size: int = 32, crop_size: int = 28, flip: bool = True, limit: int = 0):
        if channels != 1:
            raise ValueError("Fashion-MNIST is grey: channels must be 1")
        check_preprocess(self.preprocess, load_size, crop_size)
        for label in (class_A, class_B):
            if not 0 <= label < len(CLASSES):
                raise ValueError(f"class labels are 0..9, got {label}")
        if class_A == class_B:
            raise ValueError(f"class_A and class_B are both {class_A}: domains A and B need two different classes")
        self.source, self.labels, self.channels = source, {"A": class_A, "B": class_B}, channels
        if limit < 0:
            raise ValueError(f"limit: 0 (every image) or a positive count of images per domain, got {limit}")
        self.load_size, self.crop_size, self.flip, self.limit = load_size, crop_size, flip, limit

    def domain(self, name: str, split: str) -> Dataset:
        images = load_split(self.source, split, self.labels[name])
        if self.limit:
            images = images[: self.limit]
        transform = image_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        return ArrayDomain(images, f"{split}{name}", transform)
