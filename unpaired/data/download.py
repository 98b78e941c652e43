"""Download the standard CycleGAN and pix2pix datasets: ``unpaired data download NAME``.

The archives, the server and the layout are those of the reference repository's
``datasets/download_cyclegan_dataset.sh`` and ``datasets/download_pix2pix_dataset.sh``
(junyanz/pytorch-CycleGAN-and-pix2pix); added here: a progress bar, resume of a partial
download, a size check (and a SHA-256 check where one is known) and an all-or-nothing, safe
extraction.

Names, and the folder each lands in (``root`` is ``datasets/`` by default):

* CycleGAN, unpaired, ``trainA/ trainB/ testA/ testB/``: ``apple2orange``,
  ``summer2winter_yosemite``, ``horse2zebra``, ``monet2photo``, ``cezanne2photo``,
  ``ukiyoe2photo``, ``vangogh2photo``, ``maps``, ``facades``, ``iphone2dslr_flower``,
  ``ae_photos`` (test photos for the pretrained style models) -> ``root/NAME``.
* pix2pix, paired (A|B side by side), ``train/ val/`` (facades also ``test/``): ``edges2shoes``,
  ``edges2handbags``, ``night2day`` -> ``root/NAME``; ``pix2pix/facades``, ``pix2pix/maps`` ->
  ``root/pix2pix/facades``, ``root/pix2pix/maps``.

``facades`` and ``maps`` are in both collections, as different archives with different layouts.
The bare name is the CycleGAN set (the same name and folder as the CycleGAN script); the pix2pix
set carries the ``pix2pix/`` prefix. A name is its folder under ``root``, so the two never
collide. ``cyclegan/NAME`` and ``pix2pix/NAME`` are accepted for every set of their collection.

``cityscapes`` is not downloaded: its licence requires registering (:func:`download` says how to
prepare it).

Checksums: the authors publish none, and none could be computed when this table was written (no
network), so every ``sha256`` below is None and only the size is checked, against the server's
Content-Length; an entry given a ``sha256`` is verified.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from unpaired.errors import DataError
from unpaired.runtime.terminal import interactive
from unpaired.plugin.registry import closest

CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
#: Environment variable naming a mirror's base URL (``url=`` takes precedence).
URL_ENV = "UNPAIRED_DATASETS_URL"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One downloadable dataset.

    Attributes:
        file: the archive's name on the authors' server and on a mirror, e.g. ``horse2zebra.zip``.
        base: the authors' base URL.
        top: the folder the archive holds the dataset in.
        layout: the sub-folders of a complete dataset (checked after extraction, and on a folder
            already present).
        sha256: the archive's SHA-256 (hex), verified when not None.
    """

    file: str
    base: str
    top: str
    layout: tuple[str, ...]
    sha256: str | None = None


CYCLEGAN = ("apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
            "ukiyoe2photo", "vangogh2photo", "maps", "facades", "iphone2dslr_flower", "ae_photos")
PIX2PIX = ("facades", "maps", "edges2shoes", "edges2handbags", "night2day")


def _cyclegan(name: str) -> Entry:
    # ae_photos only feeds the pretrained style models at test time; its sub-folders are not
    # documented, so only its top folder is required
    layout = () if name == "ae_photos" else ("trainA", "trainB", "testA", "testB")
    return Entry(f"{name}.zip", CYCLEGAN_URL, name, layout)


def _pix2pix(name: str) -> Entry:
    # every pix2pix archive has train/ and val/; facades alone also has test/
    layout = ("train", "val", "test") if name == "facades" else ("train", "val")
    return Entry(f"{name}.tar.gz", PIX2PIX_URL, name, layout)


#: Every downloadable dataset, by name; the name is also its folder under ``root``.
DATASETS: dict[str, Entry] = {
    **{name: _cyclegan(name) for name in CYCLEGAN},
    **{(f"pix2pix/{name}" if name in CYCLEGAN else name): _pix2pix(name) for name in PIX2PIX},
}
#: Other spellings of the same datasets.
ALIASES = {f"cyclegan/{name}": name for name in CYCLEGAN} | {
    f"pix2pix/{name}": name for name in PIX2PIX if name not in CYCLEGAN}
CITYSCAPES = ("cityscapes", "cyclegan/cityscapes", "pix2pix/cityscapes")


def resolve(name: str, root: str | os.PathLike = "datasets") -> str:
    """The table name (:data:`DATASETS`) of ``name``, an alias resolved.

    ``root`` only serves the cityscapes message (where to put the prepared dataset).

    Raises:
        DataError: ``name`` is cityscapes (licensed: the message says how to prepare it), or is
            unknown (the message lists the known names, with a "did you mean").
    """
    if name in CITYSCAPES:
        raise DataError(
            "cityscapes cannot be downloaded for you: its licence requires registering at "
            "https://www.cityscapes-dataset.com. Download gtFine_trainvaltest.zip and "
            "leftImg8bit_trainvaltest.zip there, unzip them, then run the reference repository's "
            "datasets/prepare_cityscapes_dataset.py --gtFine_dir gtFine --leftImg8bit_dir leftImg8bit "
            f"--output_dir {Path(root) / 'cityscapes'} (it writes trainA/trainB/testA/testB for CycleGAN and "
            "train/test A|B pairs for pix2pix).", key=name, code="licence")
    name = ALIASES.get(name, name)
    if name not in DATASETS:
        known = [*DATASETS, *ALIASES, *CITYSCAPES]
        raise DataError(f"unknown dataset {name!r}.{closest(name, known)} "
                        f"Known: {', '.join(DATASETS)} (and cityscapes, which needs a licence).",
                        key=name, code="unknown-dataset")
    return name


def archive_url(name: str, url: str | None = None) -> str:
    """The URL of dataset ``name``'s archive.

    Args:
        name: a dataset name or alias (see the module docstring).
        url: a mirror's base URL, holding the archives under their original names in one folder;
            None: ``$UNPAIRED_DATASETS_URL`` if set, else the authors' server.

    Raises:
        DataError: as :func:`resolve`, or a base URL that is not http(s):// or file://.
    """
    entry = DATASETS[resolve(name)]
    base = url or os.environ.get(URL_ENV) or entry.base
    if not base.startswith(("http://", "https://", "file://")):
        raise DataError(f"{base}: not a URL; a mirror is http://..., https://... or file:///folder (--url or ${URL_ENV}).",
                        key=base, code="bad-url")
    return f"{base.rstrip('/')}/{entry.file}"


def download(name: str, root: str | os.PathLike = "datasets", url: str | None = None,
             progress: bool = True) -> Path:
    """Download and extract a standard dataset; return its folder, ``root/NAME``.

    A complete dataset folder already there is returned at once, without a download (a note on
    stderr says so). Otherwise the archive is fetched into ``FOLDER/FILE.part`` (FOLDER: the
    dataset folder's parent), resuming an earlier partial download with an HTTP Range request
    (a server that ignores it is downloaded again from the start), checked (size against the
    server's Content-Length, SHA-256 where known), renamed to ``FOLDER/FILE``, extracted into a
    temporary folder there, checked for the layout folders, renamed into place, then deleted.
    A complete archive already at ``FOLDER/FILE`` (left by an extraction that failed on the disk,
    or put there by hand) is extracted without a download.

    Args:
        name: a dataset name or alias, e.g. ``horse2zebra``, ``edges2shoes``, ``pix2pix/facades``.
        root: the folder that receives the dataset.
        url: a mirror's base URL (see :func:`archive_url`); None: ``$UNPAIRED_DATASETS_URL``, else
            the authors' server.
        progress: show a progress bar (tqdm, on stderr).

    Returns:
        The dataset folder, e.g. ``datasets/horse2zebra``.

    Raises:
        DataError: cityscapes (how to prepare it) or an unknown name; a folder already there that
            lacks layout folders; an HTTP error or no connection; a transfer cut short (the
            ``.part`` is kept and the same call resumes it); a checksum mismatch (the ``.part`` is
            deleted); an archive that is corrupt, unsafe (a member outside the dataset folder) or
            lacks the layout (the archive is deleted).
        OSError: the disk (full, no permission); the archive is kept for the next call.

    Source: ``datasets/download_cyclegan_dataset.sh`` and ``datasets/download_pix2pix_dataset.sh``
    of junyanz/pytorch-CycleGAN-and-pix2pix.
    """
    key = resolve(name, root)
    entry = DATASETS[key]
    target = Path(root) / key
    if target.is_dir():
        missing = [d for d in entry.layout if not (target / d).is_dir()]
        if missing:
            raise DataError(f"{target} exists but lacks {', '.join(missing)}: an incomplete or different "
                            f"dataset. Move or delete it, then run the same command again.",
                            key=str(target), code="incomplete")
        print(f"{target}: already present, nothing downloaded (delete it to download it again).", file=sys.stderr)
        return target
    if entry.file.endswith(".tar.gz") and not hasattr(tarfile, "data_filter"):
        raise DataError(f"{key}: a safe tar extraction needs Python 3.10.12, 3.11.4 or newer "
                        f"(tarfile filters); this is {sys.version.split()[0]}. Upgrade Python.",
                        key=key, code="old-python")
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = target.parent / entry.file
    if not archive.exists():
        _fetch(archive_url(key, url), archive, entry.sha256, progress)
    _extract(archive, entry, target)
    archive.unlink()
    return target


def _fetch(url: str, archive: Path, sha256: str | None, progress: bool) -> None:
    """Download ``url`` to ``archive`` through ``archive.part``, resuming it; see :func:`download`."""
    part = archive.with_name(archive.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the .part is as long as the file or longer: start again
            part.unlink()
            return _fetch(url, archive, sha256, progress)
        raise DataError(f"{url}: HTTP {err.code} {err.reason}. Check the dataset name, or the mirror given "
                        f"by --url or ${URL_ENV}.", key=url, code="http-error") from None
    except (OSError, HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"{url}: cannot connect ({reason}). Check the network, or give a mirror with --url, "
                        f"then run the same command again.", key=url, code="no-connection") from None
    with response:
        total = _total(response, have, part)
        if response.status != 206:  # 200: the server ignored the range and sends the whole file
            have = 0
        with open(part, "ab" if have else "wb") as out, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=archive.name, disable=not (progress and interactive())) as bar:
            dropped = False
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, HTTPException):  # reported below, after the .part is closed
                dropped = True
    size = part.stat().st_size
    # a short read is how http.client reports a connection closed before Content-Length
    if dropped or (total is not None and size != total):
        of = f" of {total}" if total is not None else ""
        raise DataError(f"{url}: the connection dropped after {size}{of} bytes; {part} is kept: "
                        f"run the same command again to resume.", key=url, code="connection-dropped")
    if sha256 is not None:
        digest = _sha256(part)
        if digest != sha256:
            part.unlink()
            raise DataError(f"{url}: SHA-256 {digest} does not match the expected {sha256}; {part} was "
                            f"deleted: run the same command again to download it again.", key=url, code="sha256")
    part.replace(archive)


def _total(response, have: int, part: Path) -> int | None:
    """The whole file's size from a 200 (Content-Length) or 206 (Content-Range) answer; None: unknown.

    Raises:
        DataError: a 206 answer that does not start at byte ``have``.
    """
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", "").strip())
        if not match or int(match[1]) != have:
            raise DataError(f"{response.url}: asked for bytes {have}- but the server answered "
                            f"{response.headers.get('Content-Range')!r}. Delete {part} and run again.",
                            key=response.url, code="bad-range")
        return None if match[2] == "*" else int(match[2])
    length = response.headers.get("Content-Length")
    return int(length) if length is not None else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _extract(archive: Path, entry: Entry, target: Path) -> None:
    """Extract ``archive`` into a temporary folder beside ``target``, check it, rename it to ``target``.

    Raises:
        DataError: the archive is corrupt, holds a member outside the folder, or lacks
            ``entry.top`` or one of ``entry.layout``; the archive is deleted (a download replaces it).
        OSError: the disk; the archive is kept.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        try:
            if archive.name.endswith(".zip"):
                _unzip(archive, tmp)
            else:
                with tarfile.open(archive, "r:*") as tar:
                    tar.extractall(tmp, filter="data")  # refuses absolute paths, "..", links outside
            extracted = tmp / entry.top
            if not extracted.is_dir():
                raise DataError(f"{archive}: no folder {entry.top}/ in the archive",
                                key=str(archive), code="bad-archive")
            missing = [f"{entry.top}/{d}/" for d in entry.layout if not (extracted / d).is_dir()]
            if missing:
                raise DataError(f"{archive}: no folder {', '.join(missing)} in the archive",
                                key=str(archive), code="bad-archive")
        except tarfile.FilterError as err:
            raise DataError(f"{archive}: unsafe member ({err})", key=str(archive), code="unsafe-archive") from None
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise DataError(f"{archive}: corrupt archive ({err})", key=str(archive), code="bad-archive") from None
        extracted.rename(target)
    except DataError as err:
        archive.unlink()
        raise DataError(f"{err}; the archive was deleted: run the same command again to download it again, "
                        f"or check the mirror.", key=str(archive), code="bad-archive") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unzip(archive: Path, dest: Path) -> None:
    """Extract a zip file, refusing any member that would land outside ``dest``."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            path = PurePosixPath(member.replace("\\", "/"))
            # zipfile would silently rewrite such names; refuse the archive instead
            if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
                raise DataError(f"{archive}: unsafe member {member!r} (outside the dataset folder)",
                                key=str(archive), code="unsafe-archive")
        zf.extractall(dest)
