"""Image files: which files are images, how each format is decoded, and the value conventions
(uint8 or float in [0, 1] when read; float in [-1, 1] for the networks).
"""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import tifffile
import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from unpaired.errors import DataError, warn


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
    suffix of :data:`IMAGE_EXTENSIONS` (any case); a named pipe, socket or device is not.
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
                (images if path.suffix.lower() in IMAGE_EXTENSIONS and not _special(path) else others).append(path)

    def key(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    return sorted(images, key=key), sorted(others, key=key)


def _special(path: Path) -> bool:
    # a named pipe or device called x.png would block the reader: not an image (a broken link
    # stays one, and is named as unreadable)
    return os.path.exists(path) and not os.path.isfile(path)


def why_not_image(path: Path) -> str:
    """Why :func:`list_images` put ``path`` among the other files: a pipe, socket or device, or
    a suffix not in :data:`IMAGE_EXTENSIONS`."""
    return "not a regular file (a pipe, socket or device)" if _special(path) else f"not an image ({path.suffix or 'no suffix'})"


def skipped_note(folder: Path, others: list[Path]) -> str:
    """The warning for files under ``folder`` that :func:`list_images` found not to be images:
    their count and the first five relative paths."""
    names = ", ".join(p.relative_to(folder).as_posix() for p in others[:5])
    return f"{folder}: {len(others)} file(s) that are not images ({', '.join(IMAGE_EXTENSIONS)}) are skipped, e.g. {names}."


class _NonFinite(ValueError):
    """A float image with NaN or infinite pixels: decoded fine, unusable."""


def non_finite(arr: np.ndarray) -> str | None:
    """What is wrong with a float image's NaN or infinite pixels, or None (also for integer images)."""
    if arr.dtype.kind != "f" or np.isfinite(arr).all():
        return None
    return f"{int((~np.isfinite(arr)).sum())} pixel value(s) are NaN or infinite; fix or mask them in the file"


def _unit_range(arr: np.ndarray, bits: int) -> Tensor:
    """A decoded array of more than 8 bits as float32 in [0, 1]: unsigned integers divided by
    2**bits - 1 (the file's bits per sample: 65535 for 16 bits), floats already in [0, 1] kept,
    anything else (signed, 32-bit integers, other float ranges) mapped from the image's own
    minimum and maximum."""
    if bad := non_finite(arr):
        raise _NonFinite(bad)
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
                        f"(axes {axes}); unpaired reads grey, grey+alpha, RGB or RGBA. Export 1 or 3 channels.",
                        key=str(path), code="channels")
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


def tiff_pages(tif: tifffile.TiffFile) -> int:
    """The images an open TIFF holds: its pages that are not reduced-resolution copies of another
    (a thumbnail, a pyramid's levels)."""
    return sum(1 for page in tif.pages if not page.is_reduced)


def multi_page(pages: int) -> str:
    """What is wrong with a TIFF of several images, and what to do."""
    return (f"a TIFF of {pages} pages (an image stack); a file is one image here. Save each page as its own file "
            "(e.g. tifffile.imwrite per page), or keep only the page to train on")


def read_image(path: Path, channels: int) -> Tensor:
    """Decode an image file to (C, H, W) with ``channels`` 1 (grey) or 3 (RGB).

    8-bit files give uint8 (0..255). Files with more bits keep their precision as float32 in
    [0, 1]: 16-bit PNG and TIFF divided by 65535 (2**BitsPerSample - 1), float TIFFs already in
    [0, 1] as they are, other float and 32-bit integer images mapped from their own minimum and
    maximum. Grey files become RGB and RGB grey (ITU-R 601 luma), alpha is dropped, an animated
    GIF gives its first frame, and the EXIF orientation is applied (not to TIFFs of more than 8
    bits, whose Orientation tag is rare). A TIFF of several pages (a stack, an ImageJ hyperstack)
    is refused: a file is one image, and taking its first page would train on a fraction of it
    unseen (reduced-resolution pages, a thumbnail or a pyramid's levels, do not count).

    Decoders: JPEG, WebP and GIF by torchvision (libjpeg, libwebp, giflib); TIFF of more than 8
    bits by tifffile; PNG, BMP and other TIFF by Pillow. PNG avoids torchvision because its PNG
    decoder crashes the process on damaged pixel data; a 16-bit colour PNG, which Pillow reduces
    to 8 bits, goes to torchvision only after its chunks' CRCs and its compressed data check out.

    Raises:
        DataError: the file is missing, empty, a multi-page TIFF (code ``multi-page``), a float
            image with NaN or infinite pixels (code ``non-finite``) or cannot be decoded; names the file.
    """
    if not path.is_file():
        raise DataError(f"{path}: not a readable file (missing, a folder, or a broken link).",
                        key=str(path), code="unreadable")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file. Remove or re-save it.", key=str(path), code="empty")
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        if head[:4] in TIFF_MAGIC:
            with tifffile.TiffFile(path) as tif:
                pages = tiff_pages(tif)
            if pages > 1:
                raise DataError(f"{path}: {multi_page(pages)}.", key=str(path), code="multi-page")
        if not sniff_torchvision(head):  # by content: a PNG named .jpg goes to Pillow too
            img = _tifffile_decode(path) if head[:4] in TIFF_MAGIC else None
            img = _pillow_decode(path) if img is None else img
        else:
            data = read_file(str(path))
            with warnings.catch_warnings():  # some decoders warn and ignore the mode; converted below
                warnings.simplefilter("ignore", UserWarning)
                img = decode_image(data, mode=mode, apply_exif_orientation=True)
    except PIL.Image.DecompressionBombError as err:
        raise DataError(f"{path}: {err}. Cut it into tiles, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file.",
                        key=str(path), code="too-large") from err
    except (RuntimeError, ValueError, OSError, zlib.error, PIL.UnidentifiedImageError, tifffile.TiffFileError) as err:
        if isinstance(err, DataError):
            raise
        if isinstance(err, _NonFinite):  # the file decodes: its pixels are what is wrong
            raise DataError(f"{path}: {err}.", key=str(path), code="non-finite") from err
        reason = str(err).strip().splitlines()[0]
        if "/__w/" in reason:  # torchvision's C++ location first, its reason last
            reason = str(err).strip().splitlines()[-1].strip()
        reason = reason if 0 < len(reason) < 160 else type(err).__name__
        raise DataError(f"{path}: cannot decode image: not a valid {'/'.join(e[1:].upper() for e in IMAGE_EXTENSIONS)} "
                        f"file ({reason}). Remove or re-save it.", key=str(path), code="cannot-decode") from err
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
