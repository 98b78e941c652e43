"""``fashion_classes``: Fashion-MNIST's classes as N domains, for multi-domain translation.

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017; MIT licence): 28x28 grey images of 10 clothing
classes. The first 300 training and 100 test images of every class ship inside this package
(``scripts/make_fashion_subset.py`` rebuilds them), so StarGAN v2's Fashion recipe needs no
download; the full set is read from its IDX files. Samples and labels:
:mod:`unpaired.data.multidomain`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from unpaired.data.multidomain import MultiDomainData
from unpaired.data.preprocess import check_preprocess, image_transform
from unpaired_plugins.datasets.fashion import CLASSES, ArrayDomain, load_split

EMBEDDED_CLASSES = Path(__file__).parent / "data" / "fashion_classes.npz"


@functools.cache
def _embedded(split: str, label: int) -> np.ndarray:
    """One class's images of the embedded subset (read once: training and sampling ask for every
    domain many times)."""
    with np.load(EMBEDDED_CLASSES) as data:
        return data[f"{split}_{label}"]


class FashionClasses(MultiDomainData):
    """Fashion-MNIST classes as domains 0 .. N-1 (kind ``dataset``, name ``fashion_classes``).

    Args:
        source: ``"embedded"`` (300 train and 100 test images per class, shipped) or a folder of
            Fashion-MNIST IDX files (e.g. ``/usr/share/datasets/fashion-mnist``).
        classes: the Fashion-MNIST labels that are the domains, in domain order (default all ten).
        channels: 1 (the data is grey).
        load_size, crop_size, flip: the reference's ``resize_and_crop``; StarGAN v2's networks
            need a power-of-2 size, so the default resizes 28 -> 32 (no crop) and flips.
        limit: at most this many images per domain and split (0 = all), for quick runs.

    Raises:
        ValueError: a label outside 0..9, a repeated one, fewer than 2 classes, channels not 1,
            a negative limit.
    """

    #: the preprocessing (also what translation resizes to: the training scale)
    preprocess = "resize_and_crop"

    def __init__(self, source: str = "embedded", classes: list | None = None, channels: int = 1,
                 load_size: int = 32, crop_size: int = 32, flip: bool = True, limit: int = 0):
        if channels != 1:
            raise ValueError("Fashion-MNIST is grey: channels must be 1")
        classes = list(range(len(CLASSES))) if classes is None else [int(c) for c in classes]
        if len(classes) < 2 or len(set(classes)) != len(classes) or not all(0 <= c < len(CLASSES) for c in classes):
            raise ValueError(f"classes: two or more different Fashion-MNIST labels 0..9, got {classes}")
        if limit < 0:
            raise ValueError(f"limit: 0 (every image) or a positive count of images per domain, got {limit}")
        check_preprocess(self.preprocess, load_size, crop_size)
        self.source, self.classes, self.channels = source, classes, channels
        self.load_size, self.crop_size, self.flip, self.limit = load_size, crop_size, flip, limit
        self.domain_names = [CLASSES[c] for c in classes]

    def domain(self, name, split: str) -> Dataset:
        """Images ``(image (1, crop, crop) in [-1, 1], file name)`` of one domain (name or label) in ``split``.

        Raises:
            DataError: an unknown domain (lists them), or missing IDX files.
        """
        k = self.label(name)
        if self.source == "embedded":
            images = _embedded(split, self.classes[k])
        else:
            images = load_split(self.source, split, self.classes[k])
        if self.limit:
            images = images[: self.limit]
        transform = image_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        return ArrayDomain(images, f"{split}{k}", transform)
