"""Data plumbing shared by every dataset plugin: transforms, unaligned pairing, epoch sampling.

A dataset plugin (kind ``dataset``) returns a :class:`DomainData`; the trainer pairs its two
domains with :class:`UnalignedPairs` the way the reference implementation does (Zhu et al., ICCV
2017: domain A in (shuffled) order, domain B at a random index; an epoch has max(|A|, |B|) samples).

Paired ("aligned") data, as pix2pix uses it (Isola et al., CVPR 2017), is a plugin that also has
``aligned = True`` and a ``pairs(split, seed)`` method (:class:`PairedData`); its pairs are an
:class:`AlignedPairs`, whose two images get one shared crop and flip (:func:`paired_transform`).

Randomness is a pure function of (seed, epoch, index): the B index, the crop and the flip of
sample i in epoch e are the same whatever the number of workers or ranks, and after a resume.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from .errors import DataError

#: Decoded by torchvision.io (libpng, libjpeg, libwebp, giflib).
TORCHVISION_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
#: Decoded by Pillow: what torchvision.io does not read (scanners, microscopes, older tools).
PILLOW_EXTENSIONS = (".bmp", ".tif", ".tiff")
IMAGE_EXTENSIONS = TORCHVISION_EXTENSIONS + PILLOW_EXTENSIONS
#: Operating-system metadata files, never images (hidden files, ``.DS_Store`` and macOS ``._name``
#: AppleDouble files among them, are skipped by their leading dot).
OS_METADATA = ("Thumbs.db", "desktop.ini")


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files under ``folder`` and the other files, each sorted by relative path.

    Subfolders are walked (symbolic links followed, each real folder once); hidden files and
    folders (a leading dot: ``.DS_Store``, ``._photo.jpg``, ``.git/``) and :data:`OS_METADATA`
    are ignored. An image is a file with a suffix of :data:`IMAGE_EXTENSIONS` (any case).
    """
    images, others, seen = [], [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name not in OS_METADATA:
                path = Path(dirpath) / name
                (images if path.suffix.lower() in IMAGE_EXTENSIONS else others).append(path)

    def key(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    return sorted(images, key=key), sorted(others, key=key)


def skipped_note(folder: Path, others: list[Path]) -> str:
    """The warning for files under ``folder`` that :func:`list_images` found not to be images:
    their count and the first five relative paths."""
    names = ", ".join(p.relative_to(folder).as_posix() for p in others[:5])
    return f"{folder}: {len(others)} file(s) that are not images ({', '.join(IMAGE_EXTENSIONS)}) are skipped, e.g. {names}."


def _pillow_decode(path: Path) -> Tensor:
    """BMP/TIFF through Pillow as (C, H, W) uint8, or uint16 for 16-bit grey (scaled below)."""
    with PIL.Image.open(path) as im:
        im = PIL.ImageOps.exif_transpose(im)
        if im.mode.startswith("I;16"):
            return torch.from_numpy(np.asarray(im, dtype=np.uint16).astype(np.int32)).to(torch.uint16)[None]
        if im.mode in ("I", "F"):  # 32-bit integer or float: its own range onto 0..255
            arr = np.asarray(im, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = np.zeros_like(arr) if hi == lo else (arr - lo) / (hi - lo) * 255
            return torch.from_numpy(arr.round().astype(np.uint8))[None]
        im = im.convert("RGBA" if "A" in im.mode else "RGB" if im.mode not in ("L", "1") else "L")
        return v2.functional.pil_to_tensor(im)


def to_uint8(images: Tensor) -> Tensor:
    """Images in [-1, 1] (any shape) as the uint8 values an image file would hold: clamped,
    mapped to 0..255 and rounded (the inverse of ``x.float() / 127.5 - 1``)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def read_image(path: Path, channels: int) -> Tensor:
    """Decode an image file to uint8 (C, H, W) with ``channels`` 1 (grey) or 3 (RGB).

    Grey files become RGB and RGB grey, RGBA loses its alpha, 16-bit images are scaled to 8 bits
    (``>> 8``), 32-bit integer and float TIFFs are scaled from their own minimum and maximum to
    0..255, an animated GIF or a multi-page TIFF gives its first frame, and the EXIF orientation
    is applied. PNG, JPEG, WebP and GIF are decoded by torchvision (libpng, libjpeg, libwebp,
    giflib), BMP and TIFF by Pillow.

    Raises:
        DataError: the file is missing, empty or cannot be decoded; names the file.
    """
    if not path.is_file():
        raise DataError(f"{path}: not a readable file (missing, a folder, or a broken link).")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file. Remove or re-save it.")
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        if path.suffix.lower() in PILLOW_EXTENSIONS:
            img = _pillow_decode(path)
        else:
            data = read_file(str(path))
            with warnings.catch_warnings():  # some decoders warn and ignore the mode; converted below
                warnings.simplefilter("ignore", UserWarning)
                img = decode_image(data, mode=mode, apply_exif_orientation=True)
    except (RuntimeError, ValueError, OSError, PIL.UnidentifiedImageError) as err:
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


class PairedData(DomainData, Protocol):
    """What a dataset plugin of paired data returns: a :class:`DomainData` that also has pairs.

    The trainer looks for ``aligned``; a plugin without it (or with it False) is unpaired.
    ``domain("A", split)[i]`` and ``domain("B", split)[i]`` are the two halves of pair i outside
    the training split (same order, same file name, no random crop or flip).
    """

    aligned: bool

    def pairs(self, split: str, seed: int = 0) -> "AlignedPairs":
        """The pairs of ``split`` as an :class:`AlignedPairs` seeded by ``seed``."""


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


class PairedTransform:
    """One image transform applied to two images with ONE draw of its random parameters.

    ``t(img_a, img_b) -> (out_a, out_b)``: uint8 (C_A, H, W) and (C_B, H, W) (the channel counts
    may differ, H and W may not) to plain float tensors. Both images are wrapped as
    ``tv_tensors.Image`` so that torchvision's v2 transforms treat both as images (given two plain
    tensors, v2 transforms only the first and passes the second through untouched) and share the
    random parameters (crop position, flip) of the call. Draws come from torch's global generator:
    seed it (as :class:`AlignedPairs` does) for reproducible output.

    Raises:
        ValueError: the two images differ in height or width.
    """

    def __init__(self, transform: v2.Transform):
        self.transform = transform

    def __call__(self, img_a: Tensor, img_b: Tensor) -> tuple[Tensor, Tensor]:
        if img_a.shape[-2:] != img_b.shape[-2:]:
            raise ValueError(f"the images of a pair differ in size: {tuple(img_a.shape[-2:])} and {tuple(img_b.shape[-2:])} (H, W)")
        out_a, out_b = self.transform(tv_tensors.Image(img_a), tv_tensors.Image(img_b))
        return out_a.as_subclass(Tensor), out_b.as_subclass(Tensor)

    def __repr__(self) -> str:
        return f"PairedTransform({self.transform})"


def paired_transform(load_size: int, crop_size: int, flip: bool, train: bool) -> PairedTransform:
    """:func:`image_transform` for the two images of a pair, with one crop and one flip for both.

    Resize each (bicubic, antialiased) so its shorter side is ``load_size``, crop ``crop_size`` at
    the same position in both (random when ``train``, centred otherwise), flip both or neither
    (at random when ``train and flip``), scale to [-1, 1]. Takes uint8 (C_A, H, W) and
    (C_B, H, W), returns float32 (C_A, crop, crop) and (C_B, crop, crop). Outside training the
    result is deterministic and equals :func:`image_transform` applied to each image.
    """
    return PairedTransform(image_transform(load_size, crop_size, flip, train))


class TensorDomain(Dataset):
    """One domain from uint8 images held in memory; items ``(transform(image), name)``.

    Args:
        images: uint8 (N, C, H, W); C 1 is expanded to ``channels`` 3 when asked.
        names: N file names.
        transform: e.g. :func:`image_transform`.
        channels: channels of the items (1 or 3); None keeps C.
    """

    def __init__(self, images: Tensor, names: Sequence[str], transform, channels: int | None = None):
        if len(images) != len(names):
            raise ValueError(f"{len(images)} images but {len(names)} names")
        self.images, self.names, self.transform, self.channels = images, list(names), transform, channels

    def __len__(self) -> int:
        return len(self.images)

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


class AlignedPairs(Dataset):
    """Paired samples ``{"real_A", "real_B", "name_A", "name_B"}``, the pix2pix way.

    Item i is pair i: ``load(i) -> (img_a uint8 (C_A, H, W), img_b uint8 (C_B, H, W), name_a,
    name_b)`` passed through ``transform`` (a :class:`PairedTransform`, e.g.
    :func:`paired_transform`), so both images get the same crop and the same flip; ``real_A`` is
    float (C_A, crop, crop) and ``real_B`` float (C_B, crop, crop), in [-1, 1]. As in
    :class:`UnalignedPairs`, the random draws of item i in epoch e are seeded by (seed, e, i): the
    same item whatever the number of workers or ranks, and after a resume; another epoch draws
    another crop. Call :meth:`set_epoch` before iterating each epoch. An epoch has ``size``
    samples. ``load`` must be picklable for worker processes that do not fork (a module-level
    function, a bound method, :class:`TensorPairSource`), not a lambda.

    Raises:
        DataError: ``size`` is 0, or the two images of a pair differ in height or width (names them).
    """

    def __init__(self, load: Callable[[int], tuple[Tensor, Tensor, str, str]], size: int,
                 transform: PairedTransform, seed: int = 0):
        if size <= 0:
            raise DataError("no image pairs; check the dataset root and split.")
        self.load, self.size, self.transform, self.seed, self.epoch = load, int(size), transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.size:
            raise IndexError(f"pair {i} out of range (0..{self.size - 1})")
        img_a, img_b, name_a, name_b = self.load(i)
        if img_a.shape[-2:] != img_b.shape[-2:]:
            raise DataError(f"{name_a} / {name_b}: the two images of a pair differ in size "
                            f"({tuple(img_a.shape[-2:])} and {tuple(img_b.shape[-2:])}, H x W).")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, self.epoch, i))
            real_a, real_b = self.transform(img_a, img_b)
        return {"real_A": real_a, "real_B": real_b, "name_A": name_a, "name_B": name_b}


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
