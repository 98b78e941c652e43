"""Data plumbing shared by every dataset plugin: transforms, unaligned pairing, epoch sampling.

A dataset plugin (kind ``dataset``) returns a :class:`DomainData`; the trainer pairs its two
domains with :class:`UnalignedPairs` the way the reference implementation does (Zhu et al., ICCV
2017: domain A in (shuffled) order, domain B at a random index; an epoch has max(|A|, |B|) samples).

Paired ("aligned") data, as pix2pix uses it (Isola et al., CVPR 2017), is a plugin that also has
``aligned = True`` and a ``pairs(split, seed)`` method (:class:`PairedData`); its pairs are an
:class:`AlignedPairs`, whose two images get one shared crop and flip (:func:`unpaired.preprocess.paired_transform`).

Randomness is a pure function of (seed, epoch, index): the B index, the crop and the flip of
sample i in epoch e are the same whatever the number of workers or ranks, and after a resume.
"""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import PIL.Image
import PIL.ImageOps
import tifffile
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler, default_collate
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from .errors import DataError, warn
from .preprocess import PairedTransform

#: The files read as images. Which decoder reads one goes by its content, not its name: JPEG, WebP
#: and GIF by torchvision.io (libjpeg, libwebp, giflib); PNG, BMP and TIFF by Pillow (and tifffile),
#: PNG because torchvision 0.29's PNG decoder crashes the process (a segmentation fault, not an
#: exception) on a PNG whose pixel data is damaged, where Pillow raises an error.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
#: Operating-system metadata files, never images (hidden files, ``.DS_Store`` and macOS ``._name``
#: AppleDouble files among them, are skipped by their leading dot).
OS_METADATA = ("Thumbs.db", "desktop.ini")


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files under ``folder`` and the other files, each sorted by relative path.

    Subfolders are walked (symbolic links followed, each real folder once); a link to a folder
    that holds ``folder`` itself is skipped with a warning (it would pull in the other splits, as
    ``trainA/all -> ..`` would). Hidden files and folders (a leading dot: ``.DS_Store``,
    ``._photo.jpg``, ``.git/``) and :data:`OS_METADATA` are ignored. An image is a file with a
    suffix of :data:`IMAGE_EXTENSIONS` (any case).
    """
    images, others, seen = [], [], set()
    root = os.path.realpath(folder)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back into the tree
            dirnames[:] = []
            continue
        if root.startswith(os.path.join(real, "")):
            warn(f"{dirpath}: skipped, it links to {real}, a folder that holds {folder} itself.")
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


def _unit_range(arr: np.ndarray, bits: int) -> Tensor:
    """A decoded array of more than 8 bits as float32 in [0, 1]: unsigned integers divided by
    2**bits - 1 (the file's bits per sample: 65535 for 16 bits), floats already in [0, 1] kept,
    anything else (signed, 32-bit integers, other float ranges) mapped from the image's own
    minimum and maximum."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{int((~np.isfinite(arr)).sum())} pixel value(s) are NaN or infinite; fix or mask them in the file")
    if arr.dtype.kind == "u" and bits <= 16:
        out = arr.astype(np.float32) / float(2**bits - 1)
    else:
        out = arr.astype(np.float64)
        lo, hi = float(out.min()), float(out.max())
        if arr.dtype.kind != "f" or lo < 0 or hi > 1:
            out = np.zeros_like(out) if hi == lo else (out - lo) / (hi - lo)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).clamp_(0, 1)


def _tifffile_decode(path: Path) -> Tensor | None:
    """A TIFF of more than 8 bits per sample through tifffile as float32 (C, H, W) in [0, 1], its
    first page; None for 8-bit, palette and other TIFFs Pillow reads as well, and for files
    tifffile cannot read without the imagecodecs package: those go to Pillow."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.bitspersample <= 8 or page.photometric == tifffile.PHOTOMETRIC.PALETTE:
                return None
            arr, axes = page.asarray(), page.axes
    except (tifffile.TiffFileError, IndexError, KeyError, ValueError, NotImplementedError):
        return None  # damaged, or a compression that needs imagecodecs (LZW): Pillow tries and reports
    if "S" in axes:  # samples per pixel first: (S, H, W)
        arr = np.moveaxis(arr, axes.index("S"), 0)
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 2, 3, 4):
        raise DataError(f"{path}: a TIFF with {arr.shape[0] if arr.ndim == 3 else arr.shape} samples per pixel "
                        f"(axes {axes}); unpaired reads grey, grey+alpha, RGB or RGBA. Export 1 or 3 channels.")
    return _unit_range(arr[:1] if arr.shape[0] == 2 else arr, page.bitspersample)


#: The first bytes of a JPEG, a PNG and a TIFF (little- or big-endian), by which files are told apart.
JPEG_MAGIC, PNG_MAGIC, TIFF_MAGIC = b"\xff\xd8\xff", b"\x89PNG", (b"II*\0", b"MM\0*")
#: The first bytes of the formats torchvision decodes; anything else (whatever its name) goes to Pillow.
_TORCHVISION_MAGIC = (JPEG_MAGIC, b"GIF87a", b"GIF89a")
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def sniff_torchvision(head: bytes) -> bool:
    """Whether a file starting with ``head`` (12 bytes) is JPEG, GIF or WebP, the formats decoded
    by torchvision: a PNG named ``.jpg`` must not reach torchvision's PNG decoder."""
    return head.startswith(_TORCHVISION_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _png_colour16(path: Path) -> Tensor | None:
    """A 16-bit PNG with colour or alpha (which Pillow reduces to 8 bits) through torchvision, once
    its data cannot make torchvision's decoder crash: every chunk's CRC, the compressed stream, its
    decompressed length (for the size and interlacing) and every row's filter byte check out.
    None for any other PNG.

    Raises:
        ValueError: the file fails one of the checks (says which).
    """
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR" or head[24] != 16 or head[25] not in (2, 4, 6):
        return None  # the common case: decided from the header alone
    data = path.read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    pixel = {2: 6, 4: 4, 6: 8}[data[25]]  # bytes per pixel: RGB, grey+alpha, RGBA at 16 bits
    pos, idat = 8, []
    while pos + 12 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        if len(body) != size or zlib.crc32(kind + body) != int.from_bytes(data[pos + 8 + size : pos + 12 + size], "big"):
            raise ValueError(f"damaged {kind.decode('latin-1')} chunk (CRC mismatch or cut short)")
        idat += [body] if kind == b"IDAT" else []
        pos += 12 + size
    raw = zlib.decompress(b"".join(idat))  # zlib.error on damaged pixel data
    passes = _ADAM7 if data[28] == 1 else ((0, 0, 1, 1),)
    rows, at = [], 0
    for x0, y0, dx, dy in passes:
        w, h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if w and h:
            rows += [at + r * (1 + w * pixel) for r in range(h)]
            at += h * (1 + w * pixel)
    if len(raw) != at or any(raw[r] > 4 for r in rows):
        raise ValueError(f"damaged pixel data ({len(raw)} bytes where {width}x{height} needs {at}, or a bad row filter)")
    return _unit_range(decode_image(read_file(str(path))).to(torch.int32).numpy().astype(np.uint16), 16)


def _pillow_decode(path: Path) -> Tensor:
    """PNG/BMP/TIFF through Pillow: (C, H, W) uint8, or float32 in [0, 1] for 16-bit, 32-bit and
    float images."""
    if (img := _png_colour16(path)) is not None:
        return img
    with PIL.Image.open(path) as im:
        im = PIL.ImageOps.exif_transpose(im)
        if im.mode.startswith("I;16"):
            return _unit_range(np.asarray(im, dtype=np.uint16)[None], 16)
        if im.mode in ("I", "F"):
            return _unit_range(np.asarray(im)[None], 32)
        im = im.convert("RGBA" if "A" in im.mode else "RGB" if im.mode not in ("L", "1") else "L")
        return v2.functional.pil_to_tensor(im)


def to_uint8(images: Tensor) -> Tensor:
    """Images in [-1, 1] (any shape) as the uint8 values an image file would hold: clamped,
    mapped to 0..255 and rounded (the inverse of ``x.float() / 127.5 - 1``)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_float(image: Tensor) -> Tensor:
    """What :func:`read_image` gives (uint8, or float in [0, 1]) as float32 in [-1, 1]."""
    return v2.functional.to_dtype(image, torch.float32, scale=True) * 2 - 1


def read_image(path: Path, channels: int) -> Tensor:
    """Decode an image file to (C, H, W) with ``channels`` 1 (grey) or 3 (RGB).

    8-bit files give uint8 (0..255). Files with more bits keep their precision as float32 in
    [0, 1]: 16-bit PNG and TIFF divided by 65535 (2**BitsPerSample - 1), float TIFFs already in
    [0, 1] as they are, other float and 32-bit integer images mapped from their own minimum and
    maximum. Grey files become RGB and RGB grey (ITU-R 601 luma), alpha is dropped, an animated
    GIF or a multi-page TIFF gives its first frame, and the EXIF orientation is applied (not to
    TIFFs of more than 8 bits, whose Orientation tag is rare).

    Decoders: JPEG, WebP and GIF by torchvision (libjpeg, libwebp, giflib); TIFF of more than 8
    bits by tifffile; PNG, BMP and other TIFF by Pillow. PNG avoids torchvision because its PNG
    decoder crashes the process on damaged pixel data; a 16-bit colour PNG, which Pillow reduces
    to 8 bits, goes to torchvision only after its chunks' CRCs and its compressed data check out.

    Raises:
        DataError: the file is missing, empty or cannot be decoded; names the file.
    """
    if not path.is_file():
        raise DataError(f"{path}: not a readable file (missing, a folder, or a broken link).")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file. Remove or re-save it.")
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        if not sniff_torchvision(head):  # by content: a PNG named .jpg goes to Pillow too
            img = _tifffile_decode(path) if head[:4] in TIFF_MAGIC else None
            img = _pillow_decode(path) if img is None else img
        else:
            data = read_file(str(path))
            with warnings.catch_warnings():  # some decoders warn and ignore the mode; converted below
                warnings.simplefilter("ignore", UserWarning)
                img = decode_image(data, mode=mode, apply_exif_orientation=True)
    except PIL.Image.DecompressionBombError as err:
        raise DataError(f"{path}: {err}. Cut it into tiles, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file.") from err
    except (RuntimeError, ValueError, OSError, zlib.error, PIL.UnidentifiedImageError, tifffile.TiffFileError) as err:
        if isinstance(err, DataError):
            raise
        reason = str(err).strip().splitlines()[0]
        if "/__w/" in reason:  # torchvision's C++ location first, its reason last
            reason = str(err).strip().splitlines()[-1].strip()
        reason = reason if 0 < len(reason) < 160 else type(err).__name__
        raise DataError(f"{path}: cannot decode image: not a valid {'/'.join(e[1:].upper() for e in IMAGE_EXTENSIONS)} "
                        f"file ({reason}). Remove or re-save it.") from err
    if img.ndim == 4:  # animated GIF: frames first
        img = img[0]
    if img.shape[0] == 4:
        img = img[:3]
    if img.shape[0] == 3 and channels == 1:  # rounded, where torchvision's uint8 path truncates (77 -> 76)
        grey = v2.functional.rgb_to_grayscale(img.float())
        img = grey.round().clamp(0, 255).to(torch.uint8) if img.dtype == torch.uint8 else grey
    elif img.shape[0] != channels:
        img = img.expand(3, -1, -1).contiguous()
    return img


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


class TensorDomain(Dataset):
    """One domain from uint8 images held in memory; items ``(transform(image), name)``.

    Args:
        images: uint8 (N, C, H, W); C 1 is expanded to ``channels`` 3 when asked.
        names: N file names.
        transform: e.g. :func:`unpaired.preprocess.image_transform`.
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
    seeded by (seed, e, i). The index is ``i`` (epoch set by :meth:`set_epoch`) or ``(e, i)``, as
    :class:`EpochSampler` gives it, so that persistent worker processes need no epoch update.

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

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, epoch, i))
            img_a, name_a = self.a[i % len(self.a)]
            img_b, name_b = self.b[int(torch.randint(len(self.b), ()))]
        return {"real_A": img_a, "real_B": img_b, "name_A": name_a, "name_B": name_b}


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
                                "with load_size and crop_size) or train with data.batch_size=1.") from err
        raise


class AlignedPairs(Dataset):
    """Paired samples ``{"real_A", "real_B", "name_A", "name_B"}``, the pix2pix way.

    Item i is pair i: ``load(i) -> (img_a uint8 (C_A, H, W), img_b uint8 (C_B, H, W), name_a,
    name_b)`` passed through ``transform`` (a :class:`~unpaired.preprocess.PairedTransform`, e.g.
    :func:`~unpaired.preprocess.paired_transform`), so both images get the same crop and the same flip; ``real_A`` is
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
            raise DataError("no image pairs; check the dataset root and split.")
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
                            f"({tuple(img_a.shape[-2:])} and {tuple(img_b.shape[-2:])}, H x W).")
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
