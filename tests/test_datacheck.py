"""Folder layouts (aligned folders, single folder) and the data check: `unpaired data check`, the
check before training, and ``data.on_bad_file``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from conftest import TINY, write_images
from unpaired import cli
from unpaired.datacheck import check_data, inspect, probe
from unpaired.errors import DataError
from unpaired.recipe import load_recipe
from unpaired.trainer import Trainer
from unpaired_plugins.datasets.aligned import AlignedFolder
from unpaired_plugins.datasets.folder import SingleFolder


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
    with pytest.raises(DataError, match="single_folder holds one domain"):
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
    assert got["cut.jpg"].error == "truncated JPG (no end marker): the file was cut short; re-copy or re-save it"
    assert got["cut.png"].error == "truncated PNG (no end marker): the file was cut short; re-copy or re-save it"


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
        f"    {bad}: truncated JPG (no end marker): the file was cut short; re-copy or re-save it",
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
    assert "recipe dataset unaligned_folder" in out and f"{root / 'testB' / 'cut.jpg'}: truncated JPG" in out


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
    monkeypatch.setattr("unpaired.executor.build_network", lambda *a, **k: built.append(a) or pytest.fail("built"))
    with pytest.raises(DataError) as info:
        Trainer(_folder_recipe(tmp_path, root))
    assert str(info.value) == (
        f"1 training image(s) cannot be read:\n  - {bad}: truncated JPG (no end marker): the file was cut short; "
        "re-copy or re-save it\nFix or remove them, or set data.on_bad_file=skip to train without them "
        "('unpaired data check' lists every split).")
    assert built == [] and not (tmp_path / "run").exists()


def test_on_bad_file_skip_trains_without_it_and_lists_it(tmp_path, root_with_bad_jpeg, capsys):
    root, bad = root_with_bad_jpeg
    trainer = Trainer(_folder_recipe(tmp_path, root, "data.on_bad_file=skip", "train.max_steps=2"))
    assert f"skipped 1 unreadable training image(s):\n  - {bad}: truncated JPG" in capsys.readouterr().err
    assert len(trainer.pairs) == 3 and bad not in trainer.pairs.a.files
    assert trainer.fit().step == 2


def test_on_bad_file_value_is_checked(tmp_path, root_with_bad_jpeg):
    from unpaired.errors import RecipeError

    with pytest.raises(RecipeError, match="data.on_bad_file: 'error' or 'skip', got 'ignore'"):
        Trainer(_folder_recipe(tmp_path, root_with_bad_jpeg[0], "data.on_bad_file=ignore"))
