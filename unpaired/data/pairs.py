"""Data plumbing shared by every dataset plugin: transforms, unaligned pairing, epoch sampling.

A dataset plugin (kind ``dataset``) returns a :class:`DomainData`; the trainer pairs its two
domains with :class:`UnalignedPairs` the way the reference implementation does (Zhu et al., ICCV
2017: domain A in (shuffled) order, domain B at a random index; an epoch has max(|A|, |B|) samples).

Paired ("aligned") data, as pix2pix uses it (Isola et al., CVPR 2017), is a plugin that also has
``aligned = True`` and a ``pairs(split, seed)`` method (:class:`PairedData`); its pairs are an
:class:`AlignedPairs`, whose two images get one shared crop and flip (:func:`unpaired.data.preprocess.paired_transform`).

Randomness is a pure function of (seed, epoch, index): the B index, the crop and the flip of
sample i in epoch e are the same whatever the number of workers or ranks, and after a resume.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler, default_collate
from torchvision.transforms import v2

from unpaired.errors import DataError
from unpaired.data.preprocess import PairedTransform



class DomainData(Protocol):
    """What a dataset plugin returns."""

    channels: int

    def domain(self, name: str, split: str) -> Dataset:
        """Images of domain ``name`` ("A" or "B") in ``split`` ("train" or "test").

        Items are ``(image, name)``: image a float tensor (C, H, W) in [-1, 1], name a file name
        (str) used when writing translated images. A domain may also have ``raw(i) -> (image,
        name)``, the image before preprocessing (uint8, or float in [0, 1]) at its own size:
        ``unpaired translate`` uses it to translate a split at full size.
        """


class PairedData(DomainData, Protocol):
    """What a dataset plugin of paired data returns: a :class:`DomainData` that also has pairs.

    The trainer looks for ``aligned``; a plugin without it (or with it False) is unpaired.
    ``domain("A", split)[i]`` and ``domain("B", split)[i]`` are the two halves of pair i outside
    the training split (same order, same file name, no random crop or flip).
    """

    aligned: bool

    def pairs(self, split: str, seed: int = 0) -> "AlignedPairs":
        """The pairs of ``split`` as an :class:`AlignedPairs` seeded by ``seed``."""


class TensorDomain(Dataset):
    """One domain from uint8 images held in memory; items ``(transform(image), name)``.

    Args:
        images: uint8 (N, C, H, W); C 1 is expanded to ``channels`` 3 when asked.
        names: N file names.
        transform: e.g. :func:`unpaired.data.preprocess.image_transform`.
        channels: channels of the items (1 or 3); None keeps C.
    """

    def __init__(self, images: Tensor, names: Sequence[str], transform, channels: int | None = None):
        if len(images) != len(names):
            raise ValueError(f"{len(images)} images but {len(names)} names")
        self.images, self.names, self.transform, self.channels = images, list(names), transform, channels

    def __len__(self) -> int:
        return len(self.images)

    def raw(self, i: int):
        """Item ``i`` before preprocessing: ``(image (C, H, W) uint8, name)``."""
        return _with_channels(self.images[i], self.channels), self.names[i]

    def __getitem__(self, i: int):
        return self.transform(_with_channels(self.images[i], self.channels)), self.names[i]


class TensorPairSource:
    """A ``load`` function for :class:`AlignedPairs` over uint8 tensors in memory (picklable).

    ``source(i) -> (images_a[i], images_b[i], names[i], names[i])``, the images uint8 (C, H, W);
    one-channel images are expanded to ``channels_a`` / ``channels_b`` 3 when asked.
    """

    def __init__(self, images_a: Tensor, images_b: Tensor, names: Sequence[str], channels_a: int | None = None,
                 channels_b: int | None = None):
        if not len(images_a) == len(images_b) == len(names):
            raise ValueError(f"pairs need as many A images ({len(images_a)}) as B images ({len(images_b)}) and names ({len(names)})")
        self.a, self.b, self.names = images_a, images_b, list(names)
        self.channels_a, self.channels_b = channels_a, channels_b

    def __len__(self) -> int:
        return len(self.names)

    def __call__(self, i: int) -> tuple[Tensor, Tensor, str, str]:
        name = self.names[i]
        return _with_channels(self.a[i], self.channels_a), _with_channels(self.b[i], self.channels_b), name, name


def _with_channels(img: Tensor, channels: int | None) -> Tensor:
    if channels is None or img.shape[0] == channels:
        return img
    if img.shape[0] == 1 and channels == 3:
        return img.expand(3, -1, -1)
    return v2.functional.rgb_to_grayscale(img)


def _seed(*parts: int) -> int:
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h * 6364136223846793005 + int(p) + 1442695040888963407) % (1 << 63)
    return h


class UnalignedPairs(Dataset):
    """Unpaired samples ``{"real_A", "real_B", "name_A", "name_B"}`` from two domain datasets.

    Item i of epoch e is A[i mod |A|] with B[random]; the random draws (B index, crops, flips) are
    seeded by (seed, e, i). With ``second_sample``, also ``real_A2`` and ``real_B2``: another
    random image of each domain (UNSB's second sample; Kim et al., ICLR 2024), drawn after the first
    so that the first pair is the same with or without it. The index is ``i`` (epoch set by :meth:`set_epoch`) or ``(e, i)``, as
    :class:`EpochSampler` gives it, so that persistent worker processes need no epoch update.

    Raises:
        DataError: either domain is empty.
    """

    def __init__(self, domain_a: Dataset, domain_b: Dataset, seed: int = 0, second_sample: bool = False):
        for name, ds in (("A", domain_a), ("B", domain_b)):
            if len(ds) == 0:
                raise DataError(f"domain {name} has no images; check the dataset root and split.",
                                key=name, code="no-images")
        self.a, self.b, self.seed, self.epoch = domain_a, domain_b, seed, 0
        self.second_sample = second_sample

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, epoch, i))
            img_a, name_a = self.a[i % len(self.a)]
            img_b, name_b = self.b[int(torch.randint(len(self.b), ()))]
            item = {"real_A": img_a, "real_B": img_b, "name_A": name_a, "name_B": name_b}
            if self.second_sample:
                item["real_A2"] = self.a[int(torch.randint(len(self.a), ()))][0]
                item["real_B2"] = self.b[int(torch.randint(len(self.b), ()))][0]
        return item


def batch_size(batch: dict) -> int:
    """The number of samples N of a collated batch (its first tensor's length)."""
    return len(next(v for v in batch.values() if isinstance(v, Tensor)))


def collate_pairs(items: list[dict]) -> dict:
    """torch's ``default_collate`` of :class:`UnalignedPairs` or :class:`AlignedPairs` samples.

    Raises:
        DataError: a batch's images differ in size (a preprocess that keeps each image's own size,
            ``none`` or ``scale_width``, with a batch of several): names the images and the fix.
    """
    try:
        return default_collate(items)
    except RuntimeError as err:
        for domain in ("A", "B"):
            shapes = [tuple(item[f"real_{domain}"].shape[-2:]) for item in items]
            if len(set(shapes)) > 1:
                listed = ", ".join(f"{item[f'name_{domain}']} {h}x{w}" for item, (h, w) in zip(items, shapes))
                raise DataError(f"one batch holds domain {domain} images of different sizes ({listed}): a batch "
                                "needs one size. Preprocess to one size (e.g. data.args.preprocess=resize_and_crop "
                                "with load_size and crop_size) or train with data.batch_size=1.",
                                key=domain, code="batch-sizes") from err
        raise


class AlignedPairs(Dataset):
    """Paired samples ``{"real_A", "real_B", "name_A", "name_B"}``, the pix2pix way.

    Item i is pair i: ``load(i) -> (img_a uint8 (C_A, H, W), img_b uint8 (C_B, H, W), name_a,
    name_b)`` passed through ``transform`` (a :class:`~unpaired.data.preprocess.PairedTransform`, e.g.
    :func:`~unpaired.data.preprocess.paired_transform`), so both images get the same crop and the same flip; ``real_A`` is
    float (C_A, crop, crop) and ``real_B`` float (C_B, crop, crop), in [-1, 1]. As in
    :class:`UnalignedPairs`, the random draws of item i in epoch e are seeded by (seed, e, i): the
    same item whatever the number of workers or ranks, and after a resume; another epoch draws
    another crop. The index is ``i`` (epoch set by :meth:`set_epoch`) or ``(e, i)`` as
    :class:`UnalignedPairs`. An epoch has ``size``
    samples. ``load`` must be picklable for worker processes that do not fork (a module-level
    function, a bound method, :class:`TensorPairSource`), not a lambda.

    Raises:
        DataError: ``size`` is 0, or the two images of a pair differ in height or width (names them).
    """

    def __init__(self, load: Callable[[int], tuple[Tensor, Tensor, str, str]], size: int,
                 transform: PairedTransform, seed: int = 0):
        if size <= 0:
            raise DataError("no image pairs; check the dataset root and split.", code="no-pairs")
        self.load, self.size, self.transform, self.seed, self.epoch = load, int(size), transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        if not 0 <= i < self.size:
            raise IndexError(f"pair {i} out of range (0..{self.size - 1})")
        img_a, img_b, name_a, name_b = self.load(i)
        if img_a.shape[-2:] != img_b.shape[-2:]:
            raise DataError(f"{name_a} / {name_b}: the two images of a pair differ in size "
                            f"({tuple(img_a.shape[-2:])} and {tuple(img_b.shape[-2:])}, H x W).",
                            key=name_a, code="pair-sizes")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, epoch, i))
            real_a, real_b = self.transform(img_a, img_b)
        return {"real_A": real_a, "real_B": real_b, "name_A": name_a, "name_B": name_b}


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffled indices for one epoch, the same for a given (seed, epoch), strided across ranks.

    It yields ``(epoch, index)``: the pairs datasets seed their draws with both, so a
    ``DataLoader`` can keep its worker processes from epoch to epoch (``persistent_workers``).

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
        return ((self.epoch, i) for i in self._indices()[self.start :])

    @property
    def epoch_length(self) -> int:
        """Indices this rank gets in a whole epoch."""
        return self.size // self.world_size

    def __len__(self) -> int:
        return self.epoch_length - self.start
