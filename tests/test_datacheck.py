"""Folder layouts (aligned folders, single folder) and the data check: `unpaired data check`, the
check before training, and ``data.on_bad_file``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from conftest import TINY, raises, write_images
from unpaired import cli
from unpaired.data.check import check_data, inspect, probe
from unpaired.errors import DataError
from unpaired.recipe.load import load_recipe
from unpaired.loop.trainer import Trainer
from unpaired_plugins.datasets.aligned import AlignedFolder
from unpaired_plugins.datasets.folder import SingleFolder


TRUNCATED = ("truncated {} (no end-of-image marker): the file was cut short (an interrupted copy or download); "
             "copy it again, or remove it")


def _truncated_jpeg(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# ---------------------------------------------------------------------------------------------
# aligned_folder layout "folders", single_folder


def _pair_folders(root, split="train"):
    """trainA/x/i.png and trainB/x/i.png: B is A's negative, so a pair is recognisable."""
    for i in range(3):
        a = torch.randint(0, 256, (3, 12, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        for side, img in (("A", a), ("B", 255 - a)):
            (root / f"{split}{side}" / "x").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / f"{split}{side}" / "x" / f"{i}.png")


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_aligned_folders_layout_pairs_by_relative_path(tmp_path, direction):
    _pair_folders(tmp_path)
    _pair_folders(tmp_path, "test")
    data = AlignedFolder(root=str(tmp_path), layout="folders", direction=direction, load_size=12, crop_size=12,
                         preprocess="crop", flip=False)
    pairs = data.pairs("train")
    assert len(pairs) == 3
    item = pairs[1]
    assert item["name_A"] == item["name_B"] == "x/1.png"
    assert item["real_A"].shape == (3, 12, 12)
    assert torch.allclose(item["real_A"], -item["real_B"], atol=1e-6)  # negatives, in [-1, 1]
    a = torch.randint(0, 256, (3, 12, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    first = a if direction == "AtoB" else 255 - a
    assert torch.allclose(data.domain("A", "test")[1][0], first[:, :, 2:14].float() / 127.5 - 1, atol=1e-6)


def test_aligned_folders_layout_refuses_unmatched_files(tmp_path):
    _pair_folders(tmp_path)
    Image.new("RGB", (16, 12)).save(tmp_path / "trainA" / "x" / "extra.png")
    with pytest.raises(DataError) as info:
        AlignedFolder(root=str(tmp_path), layout="folders").pairs("train")
    assert str(info.value) == (f"{tmp_path / 'trainA'} and {tmp_path / 'trainB'}: pairs need the same relative paths in "
                               "both folders; only in trainA: x/extra.png (1); rename or remove them.")


def test_single_folder_keeps_sizes_multiple_of_four_and_has_one_domain(tmp_path):
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    Image.new("RGB", (30, 21)).save(tmp_path / "photos" / "a.png")
    Image.new("L", (16, 16)).save(tmp_path / "photos" / "sub" / "b.bmp")
    data = SingleFolder(root=str(tmp_path / "photos"))
    domain = data.domain("A", "test")
    assert [domain[i][1] for i in range(2)] == ["a.png", "sub/b.bmp"]
    assert domain[0][0].shape == (3, 20, 32) and domain[1][0].shape == (3, 16, 16)
    with raises(DataError, "one-domain"):
        data.domain("B", "test")


# ---------------------------------------------------------------------------------------------
# probe / inspect


def test_probe_reads_headers_and_finds_damage(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "ok.jpg")
    Image.new("L", (7, 5)).save(tmp_path / "grey.png")
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((4, 6), dtype=np.float32))
    tifffile.imwrite(tmp_path / "g16.tif", np.zeros((4, 6), dtype=np.uint16))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    _truncated_jpeg(tmp_path / "cut.jpg")
    png = (tmp_path / "grey.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[:-12])  # no IEND

    got = {p.name: probe(p) for p in sorted(tmp_path.iterdir())}
    assert (got["ok.jpg"].size, got["ok.jpg"].mode, got["ok.jpg"].bits, got["ok.jpg"].error) == ((20, 10), "RGB", 8, None)
    assert (got["grey.png"].size, got["grey.png"].mode, got["grey.png"].bits) == ((7, 5), "L", 8)
    assert (got["f.tif"].size, got["f.tif"].bits, got["f.tif"].error) == ((6, 4), 32, None)
    assert (got["g16.tif"].mode, got["g16.tif"].bits) == ("I;16", 16)
    assert got["empty.png"].error == "empty file"
    assert got["text.png"].error.startswith("not a readable image (cannot identify image file")
    assert got["cut.jpg"].error == TRUNCATED.format("JPEG")
    assert got["cut.png"].error == TRUNCATED.format("PNG")


def test_inspect_decodes_what_the_header_does_not_show(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(good)
    raw = bytearray(good.read_bytes())
    idat = raw.index(b"IDAT")
    raw[idat + 6 : idat + 10] = b"\xff\xff\xff\xff"  # damage the pixel data, keep header and IEND
    (tmp_path / "bad.png").write_bytes(bytes(raw))
    assert probe(tmp_path / "bad.png").error is None
    assert inspect(good).error is None
    assert inspect(tmp_path / "bad.png").error.startswith("cannot decode image")


# ---------------------------------------------------------------------------------------------
# unpaired data check


def test_data_check_reports_each_split_and_names_the_truncated_jpeg(tmp_path, capsys):
    root = tmp_path / "data"
    for i, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        write_images(root / sub, 3, seed=i)
    Image.new("L", (24, 20)).save(root / "trainB" / "grey.png")
    (root / "trainA" / "notes.txt").write_text("x")
    bad = _truncated_jpeg(root / "trainA" / "broken.jpg")

    report = check_data(str(root))
    assert not report.ok
    assert cli.main(["data", "check", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"{root} (unaligned: trainA, trainB, testA, testB)",
        "  trainA: 4 image(s), sizes 16x16 to 32x32 (W x H), modes RGB 4, bits 8 4; 1 other file(s) skipped (not images); 1 unreadable",
        f"    {bad}: " + TRUNCATED.format("JPEG"),
        "  trainB: 4 image(s), sizes 16x16 to 24x20 (W x H), modes RGB 3, L 1, bits 8 4",
        "  testA: 3 image(s), sizes 16x16 to 16x16 (W x H), modes RGB 3, bits 8 3",
        "  testB: 3 image(s), sizes 16x16 to 16x16 (W x H), modes RGB 3, bits 8 3",
        "1 unreadable file(s): training would stop on them (fix or remove them, or train with data.on_bad_file=skip)",
    ]
    bad.unlink()
    assert cli.main(["data", "check", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "OK"


def test_data_check_layouts_and_missing_train_folder(tmp_path, capsys):
    write_images(tmp_path / "pix" / "train", 2)
    assert check_data(str(tmp_path / "pix")).layout == "side by side: train, test, val"
    write_images(tmp_path / "one", 2)
    assert check_data(str(tmp_path / "one")).ok
    write_images(tmp_path / "half" / "trainA", 2)
    report = check_data(str(tmp_path / "half"))
    assert not report.ok and f"  trainB: missing ({tmp_path / 'half' / 'trainB'})" in report.text()


def test_data_check_of_a_recipe(tmp_path, capsys):
    assert cli.main(["data", "check", "cyclegan-fashion"]) == 0
    assert "reads no image files (its data is in memory); nothing to check" in capsys.readouterr().out
    root = tmp_path / "data"
    for i, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        write_images(root / sub, 2, seed=i)
    _truncated_jpeg(root / "testB" / "cut.jpg")
    assert cli.main(["data", "check", "cyclegan", f"data.args.root={root}"]) == 1
    out = capsys.readouterr().out
    assert "recipe dataset unaligned_folder" in out and f"{root / 'testB' / 'cut.jpg'}: truncated JPEG" in out


def test_data_check_of_a_multi_domain_recipe(tmp_path, capsys):
    """It looked for domains A and B ('no domain A') and failed stargan-v2-fashion, which trains."""
    assert cli.main(["data", "check", "stargan-v2-fashion"]) == 0
    assert "reads no image files (its data is in memory); nothing to check" in capsys.readouterr().out
    root = tmp_path / "animals"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            write_images(root / split / name, 2, channels=1)
    (root / "train" / "fox").mkdir()  # a domain without training images
    recipe = ["data.dataset=domain_folders", "data.args=null", f"data.args.root={root}", "data.args.channels=1"]
    report = check_data("stargan-v2", recipe)
    assert [(f.name, len(f.images)) for f in report.folders] == [("train/cat", 2), ("train/dog", 2), ("test/cat", 2),
                                                                  ("test/dog", 2)]
    assert [p.split(":")[0] for p in report.problems] == ["train/fox", "test/fox"] and not report.ok
    assert "the folder is empty" in report.problems[0] and report.text().endswith("training would fail (see above)\n")


# ---------------------------------------------------------------------------------------------
# before training


def _folder_recipe(tmp_path, root, *overrides):
    return load_recipe("cyclegan-fashion", [
        *TINY, "data.dataset=unaligned_folder", *(f"data.args.{k}=null" for k in ("source", "class_A", "class_B", "limit")),
        f"data.args={json.dumps({'root': str(root), 'channels': 1, 'load_size': 16, 'crop_size': 16})}",
        "data.batch_size=1", "train.epochs=1", "train.report=false", f"out_dir={tmp_path / 'run'}", *overrides])


@pytest.fixture
def root_with_bad_jpeg(tmp_path):
    root = tmp_path / "data"
    for i, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        write_images(root / sub, 3, channels=1, seed=i)
    return root, _truncated_jpeg(root / "trainA" / "cut.jpg")


def test_training_stops_before_any_network_is_built(tmp_path, root_with_bad_jpeg, monkeypatch):
    root, bad = root_with_bad_jpeg
    built = []
    monkeypatch.setattr("unpaired.engine.executor.build_network", lambda *a, **k: built.append(a) or pytest.fail("built"))
    with pytest.raises(DataError) as info:
        Trainer(_folder_recipe(tmp_path, root))
    assert str(info.value) == (
        f"1 training image(s) cannot be read:\n  - {bad}: " + TRUNCATED.format("JPEG") + "\nFix or remove them, or set data.on_bad_file=skip to train without them "
        "('unpaired data check' lists every split).")
    assert built == [] and not (tmp_path / "run").exists()


def test_on_bad_file_skip_trains_without_it_and_lists_it(tmp_path, root_with_bad_jpeg, capsys):
    root, bad = root_with_bad_jpeg
    trainer = Trainer(_folder_recipe(tmp_path, root, "data.on_bad_file=skip", "train.max_iterations=2"))
    assert f"skipped 1 unreadable training image(s):\n  - {bad}: truncated JPEG" in capsys.readouterr().err
    assert len(trainer.pairs) == 3 and bad not in trainer.pairs.a.files
    assert trainer.fit().iteration == 2


def test_on_bad_file_value_is_checked(tmp_path, root_with_bad_jpeg):
    from unpaired.errors import RecipeError

    with raises(RecipeError, "bad-value", key="data.on_bad_file", says=("'ignore'",)):
        Trainer(_folder_recipe(tmp_path, root_with_bad_jpeg[0], "data.on_bad_file=ignore"))


# ---------------------------------------------------------------------------------------------
# files that once crashed the process or were misjudged (the new-user review)


def _png(path, width, height, depth, colour, raw: bytes):
    """A PNG by hand from its filtered scanline bytes ``raw`` (CRCs right, whatever the data)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("case", ["short", "bad-filter"])
def test_damaged_16bit_colour_png_is_an_error_not_a_crash(tmp_path, case):
    from unpaired.data.io import read_image

    rows = [b"\0" + bytes(range(24)) for _ in range(4)]  # 4 rows of 4 RGB pixels at 16 bits
    if case == "short":
        rows = rows[:3]
    else:
        rows[2] = b"\x09" + rows[2][1:]  # filter type 9 does not exist
    path = _png(tmp_path / f"{case}.png", 4, 4, 16, 2, b"".join(rows))
    with pytest.raises(DataError) as info:
        read_image(path, 3)  # torchvision's decoder would have killed the process here
    assert "damaged pixel data" in str(info.value) and str(path) in str(info.value)
    good = _png(tmp_path / "good.png", 4, 4, 16, 2, b"".join([b"\0" + bytes(range(24))] * 4))
    assert read_image(good, 3).dtype == torch.float32


def test_decoders_go_by_content_not_by_name(tmp_path):
    from unpaired.data.io import read_image

    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "real.png")
    raw = bytearray((tmp_path / "real.png").read_bytes())
    raw[raw.index(b"IDAT") + 6 : raw.index(b"IDAT") + 10] = b"\xff\xff\xff\xff"
    (tmp_path / "png-named.jpg").write_bytes(bytes(raw))  # a damaged PNG under a JPEG name: Pillow, an error
    with raises(DataError, "cannot-decode", key=str(tmp_path / "png-named.jpg")):
        read_image(tmp_path / "png-named.jpg", 3)
    Image.new("RGB", (8, 6), (200, 10, 10)).save(tmp_path / "jpeg-named.png", format="JPEG")
    assert probe(tmp_path / "jpeg-named.png").error is None and read_image(tmp_path / "jpeg-named.png", 3).shape == (3, 6, 8)


def test_jpeg_with_data_after_its_end_marker_is_fine_and_a_cut_one_is_not(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 1
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        tmp_path / "photo.jpg", quality=90, exif=exif.tobytes())
    data = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "motion.jpg").write_bytes(data + b"\0\0\0\x18ftypmp42" + bytes(200))  # a phone's video after EOI
    assert probe(tmp_path / "motion.jpg").error is None and inspect(tmp_path / "motion.jpg").error is None
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) - 40])
    assert probe(tmp_path / "cut.jpg").error.startswith("truncated JPEG (no end-of-image marker)")


def test_nan_in_a_float_tiff_and_a_decompression_bomb_are_named(tmp_path):
    from unpaired.data.io import read_image

    tifffile.imwrite(tmp_path / "nan.tif", np.array([[0.0, np.nan], [0.5, 1.0]], dtype=np.float32))
    with raises(DataError, "non-finite", key=str(tmp_path / "nan.tif"), says=("1 pixel value(s) are NaN",)):
        read_image(tmp_path / "nan.tif", 1)
    bomb = _png(tmp_path / "bomb.png", 20000, 20000, 8, 0, b"\0" * 10)
    assert "exceeds limit" in probe(bomb).error and "cut it into tiles" in probe(bomb).error
    with raises(DataError, "too-large", key=str(bomb)):
        read_image(bomb, 1)


def test_data_check_of_a_paired_recipe_reports_each_side_once(tmp_path, capsys):
    _pair_folders(tmp_path)
    _pair_folders(tmp_path, "test")
    assert cli.main(["data", "check", "pix2pix", f"data.args.root={tmp_path}", "data.args.layout=folders"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines[1:5]] == ["  trainA: 3 image(s)", "  trainB: 3 image(s)",
                                                           "  testA: 3 image(s)", "  testB: 3 image(s)"]


def test_download_refuses_a_mirror_that_is_not_a_url(tmp_path, capsys):
    assert cli.main(["data", "download", "horse2zebra", "--root", str(tmp_path), "--url", "notaurl"]) == 2
    assert capsys.readouterr().err.strip() == ("error: notaurl: not a URL; a mirror is http://..., https://... or "
                                               "file:///folder (--url or $UNPAIRED_DATASETS_URL).")
