"""Data plumbing shared by every dataset plugin: transforms, unaligned pairing, epoch sampling.

A dataset plugin (kind ``dataset``) returns a :class:`DomainData`; the trainer pairs its two
domains with :class:`UnalignedPairs` the way the reference implementation does (Zhu et al., ICCV
2017: domain A in (shuffled) order, domain B at a random index; an epoch has max(|A|, |B|) samples).

Randomness is a pure function of (seed, epoch, index): the B index, the crop and the flip of
sample i in epoch e are the same whatever the number of workers or ranks, and after a resume.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from .errors import DataError

#: What torchvision.io decodes everywhere (BMP/TIFF are not among them: convert those first).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")


def read_image(path: Path, channels: int) -> Tensor:
    """Decode an image file to uint8 (C, H, W) with ``channels`` 1 (grey) or 3 (RGB).

    Grey files become RGB and RGB grey, RGBA loses its alpha, 16-bit PNGs are scaled to 8 bits,
    an animated GIF gives its first frame, and the EXIF orientation is applied. Decoding is
    torchvision's (libpng, libjpeg, libwebp, giflib).

    Raises:
        DataError: the file is missing, empty or cannot be decoded; names the file.
    """
    if not path.is_file():
        raise DataError(f"{path}: not a readable file (missing, a folder, or a broken link).")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file. Remove or re-save it.")
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        data = read_file(str(path))
        with warnings.catch_warnings():  # some decoders warn and ignore the mode; converted below
            warnings.simplefilter("ignore", UserWarning)
            img = decode_image(data, mode=mode, apply_exif_orientation=True)
    except (RuntimeError, ValueError, OSError) as err:
        reason = str(err).strip().splitlines()[0]
        reason = reason if len(reason) < 120 and "/__w/" not in reason else type(err).__name__
        raise DataError(f"{path}: cannot decode image: not a valid {'/'.join(e[1:].upper() for e in IMAGE_EXTENSIONS)} "
                        f"file ({reason}). Remove or re-save it.") from err
    if img.ndim == 4:  # animated GIF: frames first
        img = img[0]
    if img.dtype == torch.uint16:
        img = (img.to(torch.int32) >> 8).to(torch.uint8)
    if img.shape[0] == 4:
        img = img[:3]
    if img.shape[0] != channels:
        img = v2.functional.rgb_to_grayscale(img) if channels == 1 else img.expand(3, -1, -1).contiguous()
    return img


class DomainData(Protocol):
    """What a dataset plugin returns."""

    channels: int

    def domain(self, name: str, split: str) -> Dataset:
        """Images of domain ``name`` ("A" or "B") in ``split`` ("train" or "test").

        Items are ``(image, name)``: image a float tensor (C, H, W) in [-1, 1], name a file name
        (str) used when writing translated images.
        """


def domain_channels(channels, domain: str) -> int:
    """Channel count of ``domain`` ("A"/"B") from a dataset's ``channels``: one int for both
    domains, or a pair ``[C_A, C_B]`` (e.g. grey sketches to RGB photos: ``[1, 3]``).

    Raises:
        ValueError: not 1 or 3 per domain, or not an int or a pair.
    """
    values = list(channels) if isinstance(channels, (list, tuple)) or hasattr(channels, "__len__") else [channels] * 2
    if len(values) != 2 or any(c not in (1, 3) for c in values):
        raise ValueError(f"channels must be 1, 3 or a pair such as [1, 3]; got {channels}")
    return int(values["AB".index(domain)])


def image_transform(load_size: int, crop_size: int, flip: bool, train: bool) -> v2.Transform:
    """The reference "resize_and_crop" preprocessing for uint8 images (C, H, W).

    Resize (bicubic, antialiased) so the shorter side is ``load_size``, crop ``crop_size`` (random
    when ``train``, centred otherwise), flip horizontally at random when ``train and flip``, then
    scale to [-1, 1] (mean 0.5, std 0.5 per channel).
    """
    steps = [v2.Resize(load_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)]
    steps.append(v2.RandomCrop(crop_size) if train else v2.CenterCrop(crop_size))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5], [0.5])]
    return v2.Compose(steps)


def _seed(*parts: int) -> int:
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h * 6364136223846793005 + int(p) + 1442695040888963407) % (1 << 63)
    return h


class UnalignedPairs(Dataset):
    """Unpaired samples ``{"real_A", "real_B", "name_A", "name_B"}`` from two domain datasets.

    Item i of epoch e is A[i mod |A|] with B[random]; the random draws (B index, crops, flips) are
    seeded by (seed, e, i). Call :meth:`set_epoch` before iterating each epoch.

    Raises:
        DataError: either domain is empty.
    """

    def __init__(self, domain_a: Dataset, domain_b: Dataset, seed: int = 0):
        for name, ds in (("A", domain_a), ("B", domain_b)):
            if len(ds) == 0:
                raise DataError(f"domain {name} has no images; check the dataset root and split.")
        self.a, self.b, self.seed, self.epoch = domain_a, domain_b, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i: int) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, self.epoch, i))
            img_a, name_a = self.a[i % len(self.a)]
            img_b, name_b = self.b[int(torch.randint(len(self.b), ()))]
        return {"real_A": img_a, "real_B": img_b, "name_A": name_a, "name_B": name_b}


class EpochSampler(Sampler[int]):
    """Shuffled indices for one epoch, the same for a given (seed, epoch), strided across ranks.

    ``start`` skips the first indices of this rank (a resume in the middle of an epoch). Each rank
    gets ``len // world_size`` indices (the remainder is dropped so ranks stay in step).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        # Strided shards: the ranks' k-th batches together are the single-process k-th batch.
        return order[self.rank :: self.world_size][: self.epoch_length]

    def __iter__(self):
        return iter(self._indices()[self.start :])

    @property
    def epoch_length(self) -> int:
        """Indices this rank gets in a whole epoch."""
        return self.size // self.world_size

    def __len__(self) -> int:
        return self.epoch_length - self.start
