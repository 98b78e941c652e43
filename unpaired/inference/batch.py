"""Translating many images: a folder (or file), or a split of the run's dataset, each written at
its own size.

Images are read in worker processes, batched when they have the same size (the folder's files
are sorted by their header size first), translated by a
:class:`~unpaired.inference.translator.Translator` (at the training scale unless it was made with
``scale="native"``) and written under their relative paths, with a progress bar. A file that
cannot be read or written is reported and skipped (no partial file is left); the run goes on and
ends with a :class:`TranslateSummary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image
import torch
from omegaconf import OmegaConf
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm import tqdm

from unpaired.data.build import build_dataset
from unpaired.data.io import IMAGE_EXTENSIONS, list_images, read_image, to_float, why_not_image
from unpaired.errors import DataError, RecipeError, warn
from unpaired.inference.translator import Translator, write_image
from unpaired.runtime.terminal import interactive


@dataclass
class TranslateSummary:
    """What a translation of many images did.

    Attributes:
        translated: the files written.
        skipped: ``(path, reason)`` of inputs that are not images (hidden and OS metadata files
            such as ``.DS_Store`` are ignored without a word).
        failed: ``(path, reason)`` of images that could not be read or written.
        resized: how much each translated image was resized to the training scale, in order: the
            factor of the side resized most (2.0 doubles it, 0.5 halves it; see :func:`stretch`).
        scale: what the training scale is (``resize_and_crop: 286x286``), or None (its own size).
    """

    out: Path
    translated: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    resized: list[float] = field(default_factory=list)
    scale: str | None = None

    def text(self) -> str:
        """One line of counts, one line when images were resized by more than 2x either way to the
        training scale, then one line per skipped (at most 10) and failed input."""
        lines = [f"translated {len(self.translated)}, skipped {len(self.skipped)}, failed {len(self.failed)}: {self.out}"]
        far = [f for f in self.resized if not 0.5 <= f <= 2]
        if far:
            lines.append(f"  note: {len(far)} image(s) translated at the training scale ({self.scale}), resized by "
                         f"x{min(far):.2f} to x{max(far):.2f} and the translations back; --scale native translates "
                         "them at their own size")
        lines += [f"  skipped {p}: {why}" for p, why in self.skipped[:10]]
        lines += [f"  ... and {len(self.skipped) - 10} more skipped"] if len(self.skipped) > 10 else []
        lines += [f"  FAILED {p}: {why}" for p, why in self.failed]
        return "\n".join(lines) + "\n"


def stretch(size: tuple[int, int], new: tuple[int, int]) -> float:
    """The resize factor of the side resized most from ``size`` (H, W) to ``new``: of 100x1000
    to 286x286, 0.286 (the width shrinks 3.5x; the height grows only 2.86x). An area ratio would
    call that image barely resized (x0.9)."""
    return max((n / s for s, n in zip(size, new)), key=lambda f: abs(math.log(f)))


def _header_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file's header (Pillow reads no pixels), (0, 0) when it cannot be read."""
    try:
        with PIL.Image.open(path) as im:
            return im.size
    except (OSError, ValueError, PIL.Image.DecompressionBombError):
        return (0, 0)


def output_name(name: str) -> str:
    """The file name a translation is written under: the input's name for PNG and JPEG, else the
    name plus ``.png`` (``cat.webp`` -> ``cat.webp.png``), so that no two inputs share an output."""
    return name if Path(name).suffix.lower() in (".png", ".jpg", ".jpeg") else name + ".png"


class _Files(Dataset):
    """Image files as ``(source, image (C, H, W) in [-1, 1] or None, error or None, output name)``,
    ``source`` naming the input in messages; a bad file is an item with its error, so that one
    file does not stop the others."""

    def __init__(self, files: list[Path], names: list[str], channels: int):
        self.files, self.names, self.channels = files, names, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        source = str(self.files[i])
        try:
            return source, to_float(read_image(self.files[i], self.channels)), None, self.names[i]
        except DataError as err:
            return source, None, str(err).removeprefix(f"{source}: "), self.names[i]


class _Split(Dataset):
    """A dataset split's images before preprocessing (the domain's ``raw(i)``, at full size), or
    its test-time items when the domain has no ``raw``; items as :class:`_Files`."""

    def __init__(self, domain: Dataset):
        self.domain = domain

    def __len__(self) -> int:
        return len(self.domain)

    def __getitem__(self, i: int):
        try:
            if hasattr(self.domain, "raw"):
                image, name = self.domain.raw(i)
                image = to_float(image)
            else:
                image, name = self.domain[i]
            return output_name(name), image, None, output_name(name)
        except DataError as err:
            return f"item {i}", None, str(err), None


def _translate_all(translator: Translator, items: Dataset, dst: Path, summary: TranslateSummary, batch_size: int,
                   workers: int) -> TranslateSummary:
    """Run ``items`` through ``translator`` in batches of equal-size neighbours (at most
    ``batch_size``), read by ``workers`` processes, and write each translation under ``dst``."""
    if batch_size < 1 or workers < 0:
        raise RecipeError(f"--batch-size must be 1 or more and --workers 0 or more; got {batch_size} and {workers}.",
                          key="--batch-size", code="bad-arguments")
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{dst}: a file, not a folder; choose another --out for the translations.",
                        key=str(dst), code="not-a-folder")
    summary.scale = translator.resize.describe() if translator.resize is not None else None
    loader = DataLoader(items, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None)
    batch: list[tuple[str, str, torch.Tensor]] = []  # (source, output name, image)

    def flush():
        if not batch:
            return
        try:
            out = translator(torch.stack([img for _, _, img in batch]))
        except DataError as err:  # equal sizes share a batch: the size that fails fails them all
            for source, _, _ in batch:
                summary.failed.append((source, str(err)))
                warn(f"skipping {source}: {err}")
        else:
            size = tuple(batch[0][2].shape[-2:])  # one size per batch: one factor
            factor = stretch(size, translator.size_for(*size))
            for (_, name, _), y in zip(batch, out):
                try:
                    summary.translated.append(write_image(y, dst / name))
                    summary.resized.append(factor)
                except DataError as err:
                    summary.failed.append((name, str(err)))
        batch.clear()

    with tqdm(total=len(items), desc=f"translate {translator.direction}", unit="img", dynamic_ncols=True,
              disable=not interactive()) as bar:  # in a log, the summary says it
        for source, image, error, name in loader:
            if error is not None:
                summary.failed.append((source, error))
                warn(f"skipping {source}: {error}")
            else:
                if batch and (image.shape != batch[0][2].shape or len(batch) == batch_size):
                    flush()
                batch.append((source, name, image))
            bar.update(1)
        flush()
    return summary


def translate_folder(translator: Translator, src: str | Path, dst: str | Path, batch_size: int = 4, workers: int = 2,
                     flatten: bool = False) -> TranslateSummary:
    """Translate every image of a folder and its subfolders (or one file) into ``dst``, each written
    at its own size, under the same relative paths (or, ``flatten``, their names joined by ``_``).

    Files that are not images are skipped and listed; images that cannot be decoded are reported
    (a warning as they come, then in the summary) and the others are translated.

    Raises:
        DataError: the input is missing or holds no image, ``dst`` is the input folder or inside
            it, or ``flatten`` would give two inputs one output name.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise DataError(f"{src}: not found.", key=str(src), code="not-found")
    if src.is_dir() and dst.resolve() != src.resolve() and dst.resolve().is_relative_to(src.resolve()):
        raise DataError(f"{dst}: the output folder is inside the input folder {src}; another run would translate "
                        "the translations too. Choose an --out outside it.", key=str(dst), code="output-in-input")
    root = src.parent if src.is_file() else src
    files, others = ([src], []) if src.is_file() else list_images(src)
    if not files:
        raise DataError(f"{src}: no images ({', '.join(IMAGE_EXTENSIONS)}) to translate.",
                        key=str(src), code="no-images")
    if dst.resolve() in {f.parent.resolve() for f in files}:
        raise DataError(f"{dst}: the output folder is the input folder; translations would replace the "
                        "originals. Choose another --out.", key=str(dst), code="output-is-input")
    files.sort(key=lambda f: (_header_size(f), f.relative_to(root).as_posix()))  # equal sizes together
    names = [output_name(f.relative_to(root).as_posix().replace("/", "_" if flatten else "/")) for f in files]
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{src}: two inputs would both be written as {dup}; translate without --flatten.",
                        key=str(src), code="name-clash")
    summary = TranslateSummary(dst, skipped=[(p, why_not_image(p)) for p in others])
    return _translate_all(translator, _Files(files, names, translator.in_channels), dst, summary, batch_size, workers)


def translate_split(translator: Translator, split: str, dst: str | Path, batch_size: int = 4,
                    workers: int = 2) -> TranslateSummary:
    """Translate the source domain's ``split`` of the run's own dataset (e.g. the test images): the
    dataset's ``raw`` images (before preprocessing, not cropped), each written at its own size.

    Raises:
        RecipeError: the direction has no source domain, or the recipe leaves a data setting unset
            (an imported model without ``--data``): translate files instead.
    """
    recipe, dst = translator.recipe, Path(dst)
    domain = translator.source_domain
    if translator.domain_values:  # a multi-domain run: every other domain's images, into the target
        data = build_dataset(recipe)
        others = [_Split(data.domain(k, split)) for k in range(len(data.domain_names)) if k != translator.target]
        return _translate_all(translator, ConcatDataset(others), dst, TranslateSummary(dst), batch_size, workers)
    if domain not in ("A", "B"):
        raise RecipeError("translating a dataset split needs a direction named <source>to<target>, e.g. AtoB, "
                          "or an inference image made from real_A or real_B.",
                          key="--direction", code="no-source-domain")
    unset = sorted(OmegaConf.missing_keys(recipe.data))
    if unset:
        raise RecipeError(f"translating the {split} split needs the run's dataset, but its recipe leaves "
                          f"{', '.join(unset)} unset; translate image files with --input IMAGES.",
                          key="data", code="missing")
    ds = build_dataset(recipe).domain(domain, split)
    return _translate_all(translator, _Split(ds), dst, TranslateSummary(dst), batch_size, workers)
