"""``fashion_edges``: Fashion-MNIST edge maps <-> photos, a small edges2shoes (pix2pix) task.

The task: domain A is the edge map of a clothing image, domain B the grey image itself, so a
generator A -> B learns to "render" an outline (and B -> A to draw one). Because every edge map
comes from a known photo, the true answer of any translation is known: the task serves paired
training (pix2pix, ``aligned: true``) and an unpaired method judged against the truth (CycleGAN,
``aligned: false``).

Edge maps: :func:`canny_edges`, kornia's Canny (``kornia.filters.canny``: 5x5 Gaussian blur with
sigma 1, Sobel gradients, non-maximum suppression, hysteresis with 8-connectivity) on the 28x28
image scaled to [0, 1], thresholds ``low_threshold`` 0.2 and ``high_threshold`` 0.4 on the
gradient magnitude. These give one closed outline per item plus its main inner lines (a
sneaker's sole, a boot's heel) and few isolated dots; 0.1/0.2 keeps more texture specks, 0.3/0.6
loses inner lines. Stored as uint8 0/255, one channel, computed once per split on first use and
kept in memory (deterministic; about 1 s for the 2,400 images of the embedded subset on one
CPU thread, loading included).

Splits and pairing: the images of all ``classes`` of a split are merged by interleaving the
classes in the order listed (image 0 of the first class, image 0 of the second, ..., image 1 of
the first, ...; the rest of a larger class at the end), then cut to ``limit``. Image k of split s
is named ``{s}_{k:05d}.png`` in both domains.

- ``aligned: true``: ``pairs(split)`` pairs each image's edges (A) with its photo (B);
  ``domain(A|B, split)`` gives all edges / all photos of the split in the same order.
- ``aligned: false``: the training split is cut in two halves, domain A train = the edges of the
  first half (n // 2 images), domain B train = the photos of the second half, so no training
  image gives both its edges and its photo. The test split keeps its pairs in both modes, and
  ``pairs(split)`` always pairs every image of the split (for paired evaluation).

Data: Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017, arXiv:1708.07747; MIT licence), from the
embedded subset (classes 7 Sneaker and 9 Ankle boot, 1,000 train and 200 test images each) or
from the full set's IDX files.
"""

from __future__ import annotations

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from unpaired.data.pairs import AlignedPairs, TensorDomain, TensorPairSource
from unpaired.domains import domain_channels
from unpaired.data.preprocess import check_preprocess, image_transform, paired_transform
from unpaired.errors import DataError

from .fashion import CLASSES, load_split

SPLITS = ("train", "test")


def canny_edges(images: Tensor, low_threshold: float = 0.2, high_threshold: float = 0.4) -> Tensor:
    """Canny edge maps of uint8 images (N, 1, H, W): uint8 (N, 1, H, W), 255 on edges, 0 elsewhere.

    ``kornia.filters.canny`` (5x5 Gaussian, sigma 1) on the images scaled to [0, 1]; the
    hysteresis step (keep weak edges 8-connected to strong ones) is done here, on the images
    still changing only, which gives kornia's result several times faster on large batches.
    """
    if images.ndim != 4 or images.shape[1] != 1 or images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images (N, 1, H, W), got {images.dtype} {tuple(images.shape)}")
    if len(images) == 0:
        return images.clone()
    _, marks = kornia.filters.canny(images.float() / 255, low_threshold, high_threshold, hysteresis=False)
    weak, edges = marks > 0, marks == 1  # 0.5 above the low threshold only, 1 above the high one
    active = torch.arange(len(images))
    while len(active):
        current = edges[active]
        grown = _dilate(current) & weak[active]
        changed = (grown != current).flatten(1).any(1)
        edges[active] = grown
        active = active[changed]
    return edges.to(torch.uint8) * 255


def _dilate(mask: Tensor) -> Tensor:
    """3x3 binary dilation of a bool (N, 1, H, W) mask (False outside)."""
    h, w = mask.shape[-2:]
    padded = F.pad(mask, (1, 1, 1, 1))
    out = mask.clone()
    for dy in range(3):
        for dx in range(3):
            out |= padded[..., dy : dy + h, dx : dx + w]
    return out


def interleave(arrays: list[np.ndarray]) -> np.ndarray:
    """Merge arrays (N_k, ...) by taking one item of each in turn; the rest of longer ones at the end."""
    order = sorted(((j, k) for k, a in enumerate(arrays) for j in range(len(a))))
    return np.stack([arrays[k][j] for j, k in order]) if order else np.zeros((0, *arrays[0].shape[1:]), np.uint8)


class FashionEdges:
    """Fashion-MNIST edge maps (domain A) and photos (domain B), paired or split for unpaired training.

    Args:
        source: ``"embedded"`` (the packaged subset) or a folder of Fashion-MNIST IDX files.
        classes: class labels whose images are used, merged (7 Sneaker, 9 Ankle boot).
        aligned: True for paired training (pix2pix); False cuts the training split into an
            edges half and a photos half (unpaired training); see the module docstring.
        channels: 1, 3 (grey copied to RGB) or a pair [C_A, C_B].
        load_size, crop_size, flip: "resize_and_crop" as the reference; 36 -> 32 so that U-Net
            generators with 5 down-samplings fit (the 286/256 ratio, roughly).
        limit: at most this many images per split (0 = all), for quick runs.
        low_threshold, high_threshold: Canny hysteresis thresholds on the gradient magnitude of
            the image in [0, 1].

    Attributes:
        aligned: as given; the trainer trains on :meth:`pairs` when True.
        channels: as given.
    """

    #: The preprocessing, always the reference's: also what translation resizes to (the training scale).
    preprocess = "resize_and_crop"

    def __init__(self, source: str = "embedded", classes: tuple | list = (7, 9), aligned: bool = True,
                 channels: int | list = 1, load_size: int = 36, crop_size: int = 32, flip: bool = True,
                 limit: int = 0, low_threshold: float = 0.2, high_threshold: float = 0.4):
        domain_channels(channels, "A")  # fail early on a bad value
        check_preprocess(self.preprocess, load_size, crop_size)
        classes = [classes] if isinstance(classes, int) else [int(c) for c in classes]
        if not classes or len(set(classes)) != len(classes) or any(not 0 <= c < len(CLASSES) for c in classes):
            raise ValueError(f"classes must be distinct labels 0..9, got {classes}")
        if not 0 < low_threshold < high_threshold:
            raise ValueError(f"need 0 < low_threshold < high_threshold, got {low_threshold}, {high_threshold}")
        if limit < 0:
            raise ValueError(f"limit must be >= 0 (0 = all), got {limit}")
        self.source, self.classes, self.aligned, self.channels = source, classes, bool(aligned), channels
        if limit < 0:
            raise ValueError(f"limit: 0 (every image) or a positive count of images per domain, got {limit}")
        self.load_size, self.crop_size, self.flip, self.limit = load_size, crop_size, flip, limit
        self.low_threshold, self.high_threshold = low_threshold, high_threshold
        self._cache: dict[str, tuple[Tensor, Tensor, list[str]]] = {}

    def split_images(self, split: str) -> tuple[Tensor, Tensor, list[str]]:
        """``(edges, photos, names)`` of every image of ``split``: uint8 (N, 1, 28, 28) each, N names."""
        if split not in SPLITS:
            raise DataError(f"Fashion-MNIST has the splits {', '.join(SPLITS)}, not {split!r}.",
                            key="split", code="unknown-split")
        if split not in self._cache:
            photos = interleave([load_split(self.source, split, label) for label in self.classes])
            if self.limit:
                photos = photos[: self.limit]
            photos = torch.from_numpy(np.ascontiguousarray(photos))[:, None]
            edges = canny_edges(photos, self.low_threshold, self.high_threshold)
            self._cache[split] = edges, photos, [f"{split}_{k:05d}.png" for k in range(len(photos))]
        return self._cache[split]

    def labels(self, name: str, split: str) -> Tensor:
        """The Fashion-MNIST class (int64, (N,)) of each image of ``domain(name, split)``, in its
        order: what an edge map or photo shows, for scoring translations by content."""
        counts = [len(load_split(self.source, split, label)) for label in self.classes]
        labels = interleave([np.full((n, 1), label, np.int64) for n, label in zip(counts, self.classes)])[:, 0]
        if self.limit:
            labels = labels[: self.limit]
        return torch.from_numpy(np.ascontiguousarray(labels))[self._part(name, split)]

    def _part(self, name: str, split: str) -> slice:
        """Which images of ``split`` domain ``name`` uses."""
        if self.aligned or split != "train":
            return slice(None)
        half = len(self.split_images(split)[2]) // 2
        return slice(None, half) if name == "A" else slice(half, None)

    def domain(self, name: str, split: str) -> Dataset:
        """Edge maps (A) or photos (B) of ``split``; items ``(image (C, crop, crop) in [-1, 1], name)``."""
        if name not in ("A", "B"):
            raise ValueError(f"domain is A or B, got {name!r}")
        edges, photos, names = self.split_images(split)
        part = self._part(name, split)
        transform = image_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        images = edges if name == "A" else photos
        return TensorDomain(images[part], names[part], transform, domain_channels(self.channels, name))

    def pairs(self, split: str, seed: int = 0) -> AlignedPairs:
        """Every image of ``split`` as a pair (its edges, itself), one crop and flip for both."""
        edges, photos, names = self.split_images(split)
        source = TensorPairSource(edges, photos, names, domain_channels(self.channels, "A"), domain_channels(self.channels, "B"))
        transform = paired_transform(self.load_size, self.crop_size, self.flip, split == "train", self.preprocess)
        return AlignedPairs(source, len(source), transform, seed=seed)
