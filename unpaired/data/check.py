"""Checking a dataset's image files: ``unpaired data check`` and the check before training.

Two depths:

- :func:`probe` is cheap: it reads the header (size, mode, bit depth, through Pillow or tifffile)
  and, for JPEG and PNG, checks the end marker, which catches the usual damage (a copy or a
  download cut short). ``unpaired train`` probes every training file before it builds a network.
- :func:`inspect` also decodes the whole image as training would (:func:`unpaired.data.io.read_image`).
  ``unpaired data check`` does this for every file of every split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image
import tifffile

from unpaired.data.io import JPEG_MAGIC, PNG_MAGIC, TIFF_MAGIC, list_images, multi_page, non_finite, read_image, tiff_pages
from unpaired.data.pairs import AlignedPairs, UnalignedPairs
from unpaired.errors import DataError, RecipeError, UnpairedError, warn

#: Pillow modes and their bits per sample.
_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}
_JPEG_END, _PNG_END = b"\xff\xd9", b"IEND\xaeB`\x82"


@dataclass
class ImageInfo:
    """What a check learnt about one file.

    Attributes:
        path: the file.
        size: (W, H) in pixels, or None when the header could not be read.
        mode: Pillow's mode name (``L``, ``RGB``, ``RGBA``, ``P``, ``I;16``, ...), or the TIFF's
            samples per pixel (``1x16``: one 16-bit sample) when tifffile read it.
        bits: bits per sample.
        error: why the file cannot be used, or None.
    """

    path: Path
    size: tuple[int, int] | None = None
    mode: str | None = None
    bits: int | None = None
    error: str | None = None


def _png_bits(path: Path) -> int | None:
    with open(path, "rb") as f:
        header = f.read(25)
    return header[24] if len(header) == 25 and header[12:16] == b"IHDR" else None


def _jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG's entropy-coded data ends with an end-of-image marker: the segments before
    the start of scan are skipped by their lengths (an EXIF thumbnail's own markers inside them do
    not count), then FFD9 is looked for after it; data after the marker (a phone's motion-photo
    video) is allowed."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan
            return data.find(_JPEG_END, pos) >= 0
        if marker == 0xFF or 0xD0 <= marker <= 0xD8:  # fill byte, markers without a length
            pos += 1 if marker == 0xFF else 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


def _cut_short(path: Path, head: bytes) -> str | None:
    """Why a JPEG or PNG (by content) looks cut short, or None; other formats are not checked."""
    if head.startswith(JPEG_MAGIC):
        complete, kind = _jpeg_complete(path.read_bytes()), "JPEG"
    elif head.startswith(PNG_MAGIC):
        complete, kind = _PNG_END in path.read_bytes(), "PNG"
    else:
        return None
    return None if complete else (f"truncated {kind} (no end-of-image marker): the file was cut short "
                                  "(an interrupted copy or download); copy it again, or remove it")


def probe(path: Path) -> ImageInfo:
    """The header of an image file and, for JPEG/PNG, its end marker; no pixel is decoded but a
    float TIFF's (whose NaN or infinite values only its pixels show).

    Returns an :class:`ImageInfo` whose ``error`` says what is wrong (empty, not an image,
    truncated, a multi-page TIFF, non-finite pixels); it never raises for a bad file.
    """
    info = ImageInfo(Path(path))
    try:
        if info.path.stat().st_size == 0:
            info.error = "empty file"
            return info
        with open(info.path, "rb") as f:
            head = f.read(12)
        tiff = head[:4] in TIFF_MAGIC
        try:
            with PIL.Image.open(info.path) as im:
                info.size, info.mode = im.size, im.mode
                info.bits = _BITS.get(im.mode, 8)
        except PIL.UnidentifiedImageError:
            if not tiff:
                raise
            with tifffile.TiffFile(info.path) as tif:  # float TIFFs Pillow does not open
                page = tif.pages[0]
                info.size = (page.imagewidth, page.imagelength)
                info.mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(page.samplesperpixel, f"{page.samplesperpixel} samples")
        if head.startswith(PNG_MAGIC):
            info.bits = _png_bits(info.path) or info.bits
        elif tiff:
            with tifffile.TiffFile(info.path) as tif:
                page = tif.pages[0]
                info.bits = page.bitspersample
                pages = tiff_pages(tif)
                # float pixels can be NaN or infinite: the one kind of bad content a header cannot show
                float_pixels = pages == 1 and page.dtype is not None and page.dtype.kind == "f"
                bad = non_finite(page.asarray()) if float_pixels else None
            if pages > 1 or bad:
                info.error = multi_page(pages) if pages > 1 else bad
                return info
        info.error = _cut_short(info.path, head)
    except PIL.Image.DecompressionBombError as err:
        info.error = f"{err}; cut it into tiles, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError, PIL.UnidentifiedImageError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        info.error = f"not a readable image ({reason}); re-save it as PNG or JPEG, or remove it"
    return info


def inspect(path: Path) -> ImageInfo:
    """:func:`probe`, then a full decode as training would do it (the first error wins)."""
    info = probe(path)
    if info.error is None:
        try:
            read_image(info.path, 3)
        except DataError as err:
            info.error = str(err).removeprefix(f"{info.path}: ")
    return info


@dataclass
class FolderReport:
    """The check of one folder: every file's :class:`ImageInfo` and the files that are not images."""

    name: str
    folder: Path
    images: list[ImageInfo] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    missing: bool = False

    @property
    def bad(self) -> list[ImageInfo]:
        return [i for i in self.images if i.error]

    def text(self) -> str:
        """Count, size range, modes and bit depths, then one line per bad file."""
        if self.missing:
            return f"  {self.name}: missing ({self.folder})\n"
        good = [i for i in self.images if i.size]
        line = f"  {self.name}: {len(self.images)} image(s)"
        if good:
            ws, hs = [i.size[0] for i in good], [i.size[1] for i in good]
            line += f", sizes {min(ws)}x{min(hs)} to {max(ws)}x{max(hs)} (W x H)"
            line += ", modes " + ", ".join(f"{m} {n}" for m, n in Counter(i.mode for i in good).most_common())
            line += ", bits " + ", ".join(f"{b} {n}" for b, n in sorted(Counter(i.bits for i in good).items()))
        if self.others:
            line += f"; {len(self.others)} other file(s) skipped (not images)"
        lines = [line + f"; {len(self.bad)} unreadable" if self.bad else line]
        lines += [f"    {i.path}: {i.error}" for i in self.bad]
        return "\n".join(lines) + "\n"


@dataclass
class DataReport:
    """What ``unpaired data check`` prints. ``ok`` is False when training would fail: a bad file,
    or a training folder that is missing or holds no image."""

    root: str
    layout: str
    folders: list[FolderReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        train_empty = any(f.name.startswith("train") and (f.missing or not f.images) for f in self.folders)
        return not self.problems and not train_empty and not any(f.bad for f in self.folders)

    def text(self) -> str:
        out = [f"{self.root} ({self.layout})\n", *(f.text() for f in self.folders),
               *(f"  {p}\n" for p in self.problems + self.notes)]
        bad = sum(len(f.bad) for f in self.folders)
        empty = [f.name for f in self.folders if f.name.startswith("train") and (f.missing or not f.images)]
        verdict = "OK" if self.ok else (
            f"{bad} unreadable file(s): training would stop on them (fix or remove them, or train with "
            "data.on_bad_file=skip)" if bad else f"training would fail: {', '.join(empty)} missing or without images"
            if empty else "training would fail (see above)")
        return "".join(out) + f"{verdict}\n"


def check_folder(name: str, folder: Path) -> FolderReport:
    """:func:`inspect` every image under ``folder`` (subfolders included)."""
    if not folder.is_dir():
        return FolderReport(name, folder, missing=True)
    files, others = list_images(folder)
    return FolderReport(name, folder, [inspect(f) for f in files], others)


def check_data(target: str, overrides=()) -> DataReport:
    """Check a dataset folder (the unaligned, side-by-side or single-folder layout, recognised by
    its subfolders) or the files a recipe's dataset reads, every split.

    Raises:
        RecipeError: ``target`` is neither a folder nor a loadable recipe, or a folder comes with
            recipe overrides.
    """
    root = Path(target)
    if root.is_dir():
        if overrides:
            raise RecipeError(f"{target} is a folder; key=value overrides go with a recipe "
                              f"(e.g. 'unpaired data check cyclegan data.args.root={target}').",
                              key=str(target), code="bad-arguments")
        unaligned = [f"{s}{d}" for s in ("train", "test") for d in "AB"]
        if any((root / n).is_dir() for n in unaligned):
            return DataReport(target, "unaligned: trainA, trainB, testA, testB", [check_folder(n, root / n) for n in unaligned])
        if any((root / s).is_dir() for s in ("train", "test", "val")):
            return DataReport(target, "side by side: train, test, val",
                              [check_folder(s, root / s) for s in ("train", "test", "val") if (root / s).is_dir() or s == "train"])
        return DataReport(target, "one folder of images", [check_folder("train", root)])
    return _check_recipe(target, overrides)


def _check_recipe(target: str, overrides) -> DataReport:
    from unpaired.data.build import build_dataset
    from unpaired.recipe.load import load_recipe
    from unpaired.recipe.resolved import resolve

    try:
        recipe = resolve(load_recipe(target, list(overrides)))
    except RecipeError as err:
        if overrides or Path(target).suffix in (".yaml", ".yml"):
            raise
        raise DataError(f"{target}: neither a dataset folder nor a recipe ({err}).",
                        key=str(target), code="not-a-dataset") from err
    data = build_dataset(recipe)
    report = DataReport(target, f"recipe dataset {recipe.data.dataset}")
    names = list(getattr(data, "domain_names", None) or ())  # a multi-domain dataset's, else A and B
    for split in ("train", "test"):
        seen = set()
        for name in names or "AB":
            label = f"{split}/{name}" if names else f"{split}{name}"
            try:
                domain = data.domain(name, split)
            except UnpairedError as err:
                report.problems.append(f"{label}: {err}")
                continue
            holder = file_holder(domain)
            if holder is None:
                report.notes.append(f"dataset '{recipe.data.dataset}' reads no image files (its data is in memory); nothing to check")
                return report
            side = getattr(domain, "index", 0 if names else "AB".index(name))  # pairs: this domain's file of each tuple
            paths = sorted({e[side] if isinstance(e, tuple) else e for e in holder.files})
            if tuple(paths) in seen:  # side-by-side files hold both domains: reported once
                continue
            seen.add(tuple(paths))
            report.folders.append(FolderReport(label, getattr(holder, "folder", Path(".")), [inspect(p) for p in paths]))
    return report


def file_holder(dataset):
    """The object holding the image paths of a dataset (``files``: paths, or path tuples for
    pairs): the dataset itself, its ``loader`` (pairs) or its ``load`` (:class:`AlignedPairs`);
    None for data held in memory."""
    for obj in (dataset, getattr(dataset, "loader", None), getattr(dataset, "load", None)):
        if obj is not None and isinstance(getattr(obj, "files", None), list):
            return obj
    return None


def _paths(entry) -> tuple[Path, ...]:
    """The paths of one ``files`` entry: a path, or a pair's tuple of paths."""
    return entry if isinstance(entry, tuple) else (entry,)


def check_training_files(pairs, on_bad_file: str = "error") -> list[Path]:
    """Probe every file of the training samples before training; returns the skipped files.

    Args:
        pairs: an :class:`UnalignedPairs` or :class:`AlignedPairs` (data in memory is not probed).
        on_bad_file: ``error`` stops; ``skip`` removes each bad file (a pair with a bad image
            goes as a whole) and warns with the list.

    Raises:
        DataError: bad files and ``on_bad_file: error`` (lists them with reasons), or a domain
            left without images after skipping.
    """
    parts = [pairs.a, pairs.b] if isinstance(pairs, UnalignedPairs) else [pairs] if isinstance(pairs, AlignedPairs) else []
    holders = [h for h in map(file_holder, parts) if h is not None]
    bad: dict[Path, str] = {}
    for holder in holders:
        for entry in holder.files:
            for path in _paths(entry):
                if path not in bad and (error := probe(path).error):
                    bad[path] = error
    if not bad:
        return []
    listing = "\n  - ".join(f"{p}: {e}" for p, e in list(bad.items())[:20]) + ("\n  - ..." if len(bad) > 20 else "")
    if on_bad_file != "skip":
        raise DataError(f"{len(bad)} training image(s) cannot be read:\n  - {listing}\nFix or remove them, or set "
                        "data.on_bad_file=skip to train without them ('unpaired data check' lists every split).",
                        key=str(next(iter(bad))), code="bad-files")
    for holder in holders:
        holder.files = [e for e in holder.files if not any(p in bad for p in _paths(e))]
        if not holder.files:
            raise DataError(f"{getattr(holder, 'folder', 'a domain')}: no readable image left after skipping {len(bad)} "
                            "bad file(s).", key=str(getattr(holder, "folder", "")), code="no-images")
    if isinstance(pairs, AlignedPairs):
        pairs.size = len(pairs.load)
    warn(f"data.on_bad_file=skip: skipped {len(bad)} unreadable training image(s):\n  - {listing}")
    return list(bad)
