"""``unpaired data download``: against a local HTTP server on 127.0.0.1 serving archives built here.

The server answers Range requests (206, or 200 when told to ignore them) and can be told to cut
its first answer after N bytes, as a dropped connection does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import PIL.Image
import pytest

from unpaired.data import download as dl
from unpaired.cli import main
from unpaired.errors import DataError


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; records (path, Range header, status) of each request."""

    def do_GET(self):
        srv = self.server
        data, rng = srv.files.get(self.path), self.headers.get("Range")
        if data is None:
            srv.requests.append((self.path, rng, 404))
            self.send_error(404, "Not Found")
            return
        start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1]) if rng and not srv.ignore_range else 0
        status = 206 if rng and not srv.ignore_range else 200
        srv.requests.append((self.path, rng, status))
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drop_after is not None:  # promise the whole body, send part of it, hang up
            body, srv.drop_after = body[: srv.drop_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv(dl.URL_ENV, raising=False)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.files, srv.requests, srv.drop_after, srv.ignore_range = {}, [], None, False
    srv.base = f"http://127.0.0.1:{srv.server_port}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def png(seed: int, size: int = 16) -> bytes:
    """A small noise PNG (noise: it does not compress, so archives are a few KB)."""
    pixels = random.Random(seed).randbytes(size * size * 3)
    out = io.BytesIO()
    PIL.Image.frombytes("RGB", (size, size), pixels).save(out, "PNG")
    return out.getvalue()


UNPAIRED = {"trainA/1.png": png(1), "trainA/2.png": png(2), "trainB/3.png": png(3),
            "testA/4.png": png(4), "testB/5.png": png(5)}
ALIGNED = {"train/1.png": png(6), "val/2.png": png(7)}
FACADES = {"train/1.png": png(8), "val/2.png": png(9), "test/3.png": png(10)}


def make_zip(top: str, files: dict, extra: dict | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{top}/", b"")  # folder entries, as the authors' zips have
        for name, data in files.items():
            zf.writestr(f"{top}/{name}", data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out.getvalue()


def make_tar(top: str, files: dict, extra: dict | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in {**{f"{top}/{k}": v for k, v in files.items()}, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def with_sha(monkeypatch, name: str, sha256: str) -> None:
    monkeypatch.setitem(dl.DATASETS, name, dataclasses.replace(dl.DATASETS[name], sha256=sha256))


def test_cyclegan_download_extracts_the_standard_layout(server, tmp_path):
    server.files["/horse2zebra.zip"] = make_zip("horse2zebra", UNPAIRED)
    root = tmp_path / "datasets"
    assert dl.download("horse2zebra", root, url=server.base, progress=False) == root / "horse2zebra"
    assert tree(root / "horse2zebra") == UNPAIRED
    assert listing(root) == ["horse2zebra", "horse2zebra/testA", "horse2zebra/testA/4.png",
                             "horse2zebra/testB", "horse2zebra/testB/5.png", "horse2zebra/trainA",
                             "horse2zebra/trainA/1.png", "horse2zebra/trainA/2.png", "horse2zebra/trainB",
                             "horse2zebra/trainB/3.png"]  # archive deleted, no .part, no temporary folder
    assert server.requests == [("/horse2zebra.zip", None, 200)]


def test_duplicate_names_land_in_separate_folders(server, tmp_path, monkeypatch):
    server.files["/facades.zip"] = make_zip("facades", UNPAIRED)
    server.files["/facades.tar.gz"] = make_tar("facades", FACADES)
    server.files["/edges2shoes.tar.gz"] = make_tar("edges2shoes", ALIGNED)
    monkeypatch.setenv(dl.URL_ENV, server.base + "/")  # the mirror variable, trailing slash allowed
    root = tmp_path / "datasets"
    assert dl.download("facades", root, progress=False) == root / "facades"
    assert dl.download("pix2pix/facades", root, progress=False) == root / "pix2pix" / "facades"
    assert dl.download("pix2pix/edges2shoes", root, progress=False) == root / "edges2shoes"
    assert tree(root / "facades") == UNPAIRED
    assert tree(root / "pix2pix" / "facades") == FACADES
    assert tree(root / "edges2shoes") == ALIGNED
    assert sorted(p.name for p in root.iterdir()) == ["edges2shoes", "facades", "pix2pix"]
    assert sorted(p.name for p in (root / "pix2pix").iterdir()) == ["facades"]
    assert [r[0] for r in server.requests] == ["/facades.zip", "/facades.tar.gz", "/edges2shoes.tar.gz"]


def test_names_and_urls():
    assert dl.archive_url("horse2zebra") == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"
    assert dl.archive_url("cyclegan/maps") == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/maps.zip"
    assert dl.archive_url("pix2pix/maps") == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz"
    assert dl.archive_url("edges2shoes", "http://mirror/x/") == "http://mirror/x/edges2shoes.tar.gz"
    assert sorted(dl.DATASETS) == sorted([
        "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo", "ukiyoe2photo",
        "vangogh2photo", "maps", "facades", "iphone2dslr_flower", "ae_photos",
        "pix2pix/facades", "pix2pix/maps", "edges2shoes", "edges2handbags", "night2day"])
    assert all(entry.sha256 is None for entry in dl.DATASETS.values())


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path, monkeypatch):
    archive = make_zip("horse2zebra", UNPAIRED)
    server.files["/horse2zebra.zip"] = archive
    with_sha(monkeypatch, "horse2zebra", hashlib.sha256(archive).hexdigest())  # passes only if byte-identical
    server.drop_after = 1000
    root, url = tmp_path / "datasets", f"{server.base}/horse2zebra.zip"
    part = root / "horse2zebra.zip.part"
    with pytest.raises(DataError) as err:
        dl.download("horse2zebra", root, url=server.base, progress=False)
    assert str(err.value) == (f"{url}: the connection dropped after 1000 of {len(archive)} bytes; {part} is kept: "
                              f"run the same command again to resume.")
    assert part.read_bytes() == archive[:1000]
    assert dl.download("horse2zebra", root, url=server.base, progress=False) == root / "horse2zebra"
    assert server.requests == [("/horse2zebra.zip", None, 200), ("/horse2zebra.zip", "bytes=1000-", 206)]
    assert tree(root / "horse2zebra") == UNPAIRED
    assert sorted(p.name for p in root.iterdir()) == ["horse2zebra"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, monkeypatch):
    archive = make_tar("edges2shoes", ALIGNED)
    server.files["/edges2shoes.tar.gz"] = archive
    with_sha(monkeypatch, "edges2shoes", hashlib.sha256(archive).hexdigest())
    server.drop_after, server.ignore_range = 500, True
    root = tmp_path / "datasets"
    with pytest.raises(DataError) as err:
        dl.download("edges2shoes", root, url=server.base, progress=False)
    assert str(err.value) == (
        f"{server.base}/edges2shoes.tar.gz: the connection dropped after 500 of {len(archive)} bytes; "
        f"{root / 'edges2shoes.tar.gz.part'} is kept: run the same command again to resume.")
    assert dl.download("edges2shoes", root, url=server.base, progress=False) == root / "edges2shoes"
    assert server.requests == [("/edges2shoes.tar.gz", None, 200), ("/edges2shoes.tar.gz", "bytes=500-", 200)]
    assert tree(root / "edges2shoes") == ALIGNED


def test_checksum_mismatch_deletes_the_part(server, tmp_path, monkeypatch):
    archive = make_zip("horse2zebra", UNPAIRED)
    server.files["/horse2zebra.zip"] = archive
    with_sha(monkeypatch, "horse2zebra", "0" * 64)
    root = tmp_path / "datasets"
    with pytest.raises(DataError) as err:
        dl.download("horse2zebra", root, url=server.base, progress=False)
    assert str(err.value) == (
        f"{server.base}/horse2zebra.zip: SHA-256 {hashlib.sha256(archive).hexdigest()} does not match the "
        f"expected {'0' * 64}; {root / 'horse2zebra.zip.part'} was deleted: run the same command again to "
        f"download it again.")
    assert list(root.iterdir()) == []


def test_http_error_names_the_url(server, tmp_path):
    with pytest.raises(DataError) as err:
        dl.download("monet2photo", tmp_path, url=server.base, progress=False)
    assert str(err.value) == (f"{server.base}/monet2photo.zip: HTTP 404 Not Found. Check the dataset name, "
                              f"or the mirror given by --url or $UNPAIRED_DATASETS_URL.")


@pytest.mark.parametrize("name", ["cityscapes", "pix2pix/cityscapes"])
def test_cityscapes_explains_the_licence(server, tmp_path, name):
    with pytest.raises(DataError) as err:
        dl.download(name, tmp_path / "data", url=server.base)
    assert str(err.value) == (
        "cityscapes cannot be downloaded for you: its licence requires registering at "
        "https://www.cityscapes-dataset.com. Download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip "
        "there, unzip them, then run the reference repository's datasets/prepare_cityscapes_dataset.py "
        f"--gtFine_dir gtFine --leftImg8bit_dir leftImg8bit --output_dir {tmp_path / 'data' / 'cityscapes'} "
        "(it writes trainA/trainB/testA/testB for CycleGAN and train/test A|B pairs for pix2pix).")
    assert server.requests == []


def test_unknown_name_suggests_the_closest(server, tmp_path):
    with pytest.raises(DataError) as err:
        dl.download("horse2zeba", tmp_path, url=server.base)
    assert str(err.value) == (
        "unknown dataset 'horse2zeba'. Did you mean 'horse2zebra'? Known: apple2orange, summer2winter_yosemite, "
        "horse2zebra, monet2photo, cezanne2photo, ukiyoe2photo, vangogh2photo, maps, facades, iphone2dslr_flower, "
        "ae_photos, pix2pix/facades, pix2pix/maps, edges2shoes, edges2handbags, night2day (and cityscapes, which "
        "needs a licence).")
    assert server.requests == []


def test_zip_member_outside_the_folder_is_refused(server, tmp_path):
    server.files["/horse2zebra.zip"] = make_zip("horse2zebra", UNPAIRED, extra={"../evil.png": b"x"})
    root = tmp_path / "datasets"
    with pytest.raises(DataError) as err:
        dl.download("horse2zebra", root, url=server.base, progress=False)
    assert str(err.value) == (f"{root / 'horse2zebra.zip'}: unsafe member '../evil.png' (outside the dataset "
                              f"folder); the archive was deleted: run the same command again to download it "
                              f"again, or check the mirror.")
    assert listing(tmp_path) == ["datasets"]  # nothing extracted, archive and temporary folder gone


def test_tar_member_outside_the_folder_is_refused(server, tmp_path):
    server.files["/night2day.tar.gz"] = make_tar("night2day", ALIGNED, extra={"../evil.png": b"x"})
    root = tmp_path / "datasets"
    with pytest.raises(DataError) as err:
        dl.download("night2day", root, url=server.base, progress=False)
    assert str(err.value) == (
        f"{root / 'night2day.tar.gz'}: unsafe member ('../evil.png' would be extracted to '{root / 'evil.png'}', "
        f"which is outside the destination); the archive was deleted: run the same command again to download it "
        f"again, or check the mirror.")
    assert listing(tmp_path) == ["datasets"]


def test_archive_without_the_layout_is_refused(server, tmp_path):
    files = {k: v for k, v in UNPAIRED.items() if not k.startswith("testB")}
    server.files["/horse2zebra.zip"] = make_zip("horse2zebra", files)
    root = tmp_path / "datasets"
    with pytest.raises(DataError) as err:
        dl.download("horse2zebra", root, url=server.base, progress=False)
    assert str(err.value) == (f"{root / 'horse2zebra.zip'}: no folder horse2zebra/testB/ in the archive; the archive "
                              f"was deleted: run the same command again to download it again, or check the mirror.")
    assert list(root.iterdir()) == []


def test_present_dataset_is_not_downloaded_again(server, tmp_path, capsys):
    root = tmp_path / "datasets"
    for sub in ("trainA", "trainB", "testA", "testB"):
        (root / "horse2zebra" / sub).mkdir(parents=True)
    assert dl.download("horse2zebra", root, url=server.base) == root / "horse2zebra"
    assert capsys.readouterr().err == (f"{root / 'horse2zebra'}: already present, nothing downloaded "
                                       f"(delete it to download it again).\n")
    (root / "horse2zebra" / "testB").rmdir()
    with pytest.raises(DataError) as err:
        dl.download("horse2zebra", root, url=server.base)
    assert str(err.value) == (f"{root / 'horse2zebra'} exists but lacks testB: an incomplete or different dataset. "
                              f"Move or delete it, then run the same command again.")
    assert server.requests == []


def test_cli_download(server, tmp_path, capsys, monkeypatch):
    server.files["/edges2shoes.tar.gz"] = make_tar("edges2shoes", ALIGNED)
    root = tmp_path / "datasets"
    monkeypatch.setattr(dl, "interactive", lambda: True)  # a terminal: the progress bar draws
    assert main(["data", "download", "edges2shoes", "--root", str(root), "--url", server.base]) == 0
    out, err = capsys.readouterr()
    assert out == f"dataset ready: {root / 'edges2shoes'}\n"
    assert "edges2shoes.tar.gz: 100%" in err
    assert tree(root / "edges2shoes") == ALIGNED
    assert main(["data", "download", "edges2shoe", "--root", str(root), "--url", server.base]) == 2
    assert capsys.readouterr().err.startswith("error: unknown dataset 'edges2shoe'. Did you mean 'edges2shoes'?")


def test_corrupt_archive_is_deleted(server, tmp_path):
    server.files["/apple2orange.zip"] = b"<html>not a zip</html>"
    root = tmp_path / "datasets"
    with pytest.raises(DataError) as err:
        dl.download("apple2orange", root, url=server.base, progress=False)
    assert str(err.value) == (f"{root / 'apple2orange.zip'}: corrupt archive (File is not a zip file); the archive "
                              f"was deleted: run the same command again to download it again, or check the mirror.")
    assert list(root.iterdir()) == []


def test_archive_already_there_is_extracted_without_download(server, tmp_path):
    root = tmp_path / "datasets"
    (root / "pix2pix").mkdir(parents=True)
    (root / "pix2pix" / "maps.tar.gz").write_bytes(make_tar("maps", ALIGNED))
    assert dl.download("pix2pix/maps", root, url=server.base, progress=False) == root / "pix2pix" / "maps"
    assert tree(root / "pix2pix" / "maps") == ALIGNED
    assert listing(root / "pix2pix") == ["maps", "maps/train", "maps/train/1.png", "maps/val", "maps/val/2.png"]
    assert server.requests == []
