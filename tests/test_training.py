"""End to end: a short CycleGAN run on real (tiny) data learns; its checkpoint alone translates."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from torchvision.io import decode_image

from unpaired import DataError, RecipeError
from unpaired.runs import checkpoint
from unpaired.cli import main
from unpaired.inference.translator import Translator, translate
from unpaired.recipe.load import from_yaml
from unpaired.loop.trainer import Trainer

from conftest import raises, write_images


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CycleGAN trained for 2 epochs x 8 iterations on 32 sneakers and 32 boots."""
    from conftest import TINY
    from unpaired.recipe.load import load_recipe

    out = tmp_path_factory.mktemp("run")
    recipe = load_recipe("cyclegan-fashion", TINY + [f"out_dir={out}", "train.epochs=3",
                                                     "train.scheduler.args.n_epochs=2"])
    trainer = Trainer(recipe)
    result = trainer.fit()
    return trainer, result, out


@pytest.mark.slow
def test_cycle_and_generator_losses_fall(trained):
    trainer, result, out = trained
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(2, 25, 2))
    for key in ("generators/cycle_A", "generators/cycle_B"):
        first, last = log[0][key], log[-1][key]
        assert last < 0.7 * first, (key, first, last)
    total = lambda r: sum(v for k, v in r.items() if k.startswith("generators/"))  # noqa: E731
    assert total(log[-1]) < total(log[0])
    assert result.iteration == 24 and result.epoch == 3 and result.interrupted is None


def test_linear_schedule_applied_per_epoch(trained):
    trainer, _, out = trained
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    lrs = {r["epoch"]: r["lr/generators"] for r in log if r["iteration"] % 8}
    # n_epochs=2, n_epochs_decay=1: epochs 1-2 at 2e-4, epoch 3 at 2e-4 * (1 - 1/2)
    assert lrs[0] == pytest.approx(2e-4) and lrs[1] == pytest.approx(2e-4) and lrs[2] == pytest.approx(1e-4)


def test_run_directory_holds_recipe_samples_tensorboard_and_checkpoint(trained):
    _, _, out = trained
    assert from_yaml((out / "recipe.yaml").read_text()).name == "cyclegan-fashion"
    assert (out / "samples" / "iter_00000024.png").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    ckpt = checkpoint.latest(out)
    assert ckpt.name == "iter_00000024"
    with safe_open(str(ckpt / "weights.safetensors"), "pt") as f:
        recipe = from_yaml(f.metadata()["recipe"])
        keys = list(f.keys())
    assert recipe.networks.G_AB.args.ngf == 8
    assert {k.split(".")[0] for k in keys} == {"G_AB", "G_BA", "D_A", "D_B"}


def test_checkpoint_alone_rebuilds_the_generator(trained):
    trainer, _, out = trained
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    expected = trainer.nets["G_AB"].eval()(x)
    got = translate(checkpoint.latest(out), x, "AtoB", device="cpu", scale="native")
    assert torch.allclose(got, expected, atol=1e-6)
    assert got.shape == (2, 1, 28, 28) and got.abs().max() <= 1
    back = Translator(out, "BtoA", device="cpu")
    assert back.net_name == "G_BA"


def test_translate_folder_keeps_names(trained, tmp_path):
    _, _, out = trained
    src = tmp_path / "in"
    write_images(src, 3, channels=3, size=28)  # RGB files are converted to the generator's 1 channel
    write_images(src / "sub", 1, size=28)  # sub-folders are translated into the same relative paths
    code = main(["translate", str(out), "--direction", "AtoB", "--input", str(src), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert code == 0
    written = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*.png"))
    assert written == ["img_000.png", "img_001.png", "img_002.png", "sub/img_000.png"]


def test_translate_test_split_of_the_run_dataset(trained, tmp_path):
    _, _, out = trained
    assert main(["translate", str(out), "--direction", "BtoA", "--out", str(tmp_path / "t"), "--device", "cpu"]) == 0
    files = sorted((tmp_path / "t").iterdir())
    assert len(files) == 32 and files[0].name == "testB_00000.png"


def test_translate_one_file_in_one_call(trained, tmp_path):
    _, _, out = trained
    [path] = write_images(tmp_path, 1, channels=1, size=28)
    y = translate(out, path, "AtoB", device="cpu")
    x = decode_image(str(path)).float() / 127.5 - 1  # (1, 28, 28) in [-1, 1]
    assert y.shape == (1, 28, 28)
    assert torch.allclose(y, translate(out, x, "AtoB", device="cpu"), atol=1e-6)


def test_translate_odd_sizes_are_padded_and_cropped_back(trained):
    _, _, out = trained
    y = Translator(out, "AtoB", device="cpu")(torch.zeros(1, 30, 27))
    assert y.shape == (1, 30, 27)


def test_translate_unknown_direction_lists_known(trained):
    _, _, out = trained
    with raises(RecipeError, "unknown-direction", key="AtoC", says=("'AtoB'", "Known: AtoB, BtoA")):
        Translator(out, "AtoC", device="cpu")


@pytest.mark.slow
def test_folder_dataset_without_test_split_samples_training_images(image_root, tmp_path, capsys):
    import shutil

    from unpaired.recipe.load import load_recipe

    for sub in ("testA", "testB"):
        shutil.rmtree(image_root / sub)
    small = [f"networks.{n}.args.ngf=4" for n in ("G_AB", "G_BA")] + [f"networks.{n}.args.ndf=4" for n in ("D_A", "D_B")]
    recipe = load_recipe("cyclegan", [f"data.args.root={image_root}", "data.args.load_size=36", "data.args.crop_size=32",
                                      "data.num_workers=0", "train.max_iterations=2", "device=cpu", f"out_dir={tmp_path / 'run'}",
                                      "networks.G_AB.type=resnet_6blocks", "networks.G_BA.type=resnet_6blocks", *small])
    trainer = Trainer(recipe)
    assert "testA: folder not found. Expected the layout root/trainA, root/trainB, root/testA, root/testB. Sample " \
           "grids use training images of domain A instead." in capsys.readouterr().err
    trainer.fit()
    assert (tmp_path / "run" / "samples" / "iter_00000002.png").is_file()
    assert trainer.sample_grids.inputs["real_A"].shape == (8, 3, 32, 32)



def test_translate_never_overwrites(trained, tmp_path):
    from unpaired import DataError
    from unpaired.inference.batch import output_name, translate_folder

    _, _, out = trained
    assert [output_name(n) for n in ("a.png", "a.JPG", "a.webp", "a.gif")] == ["a.png", "a.JPG", "a.webp.png", "a.gif.png"]
    [png] = write_images(tmp_path / "in", 1, channels=1, size=28)
    before = png.read_bytes()
    with raises(DataError, "output-is-input", key=str(tmp_path / "in")):
        translate_folder(Translator(out, "AtoB", "cpu"), tmp_path / "in", tmp_path / "in")
    assert png.read_bytes() == before
    # inside it: refused the first time too (a second run would have translated the translations)
    with raises(DataError, "output-in-input", key=str(tmp_path / "in" / "out")):
        translate_folder(Translator(out, "AtoB", "cpu"), tmp_path / "in", tmp_path / "in" / "out")


def test_translate_keeps_subfolders_and_reads_bmp(tiny_recipe, tmp_path):
    from PIL import Image

    from unpaired.inference.translator import Translator
    from unpaired.inference.batch import translate_folder

    Trainer(tiny_recipe("train.max_iterations=1")).fit()
    src = tmp_path / "photos"
    (src / "day1").mkdir(parents=True)
    Image.new("L", (28, 20)).save(src / "day1" / "a.bmp")
    Image.new("L", (28, 28)).save(src / "b.png")
    (src / "._b.png").write_bytes(b"AppleDouble")
    out = translate_folder(Translator(tmp_path / "run", "AtoB", device="cpu"), src, tmp_path / "out", workers=0).translated
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out) == ["b.png", "day1/a.bmp.png"]
    out.sort()
    assert Image.open(out[1]).size == (28, 20)


@pytest.mark.slow
def test_more_loader_workers_than_cpus_are_capped_with_a_warning(tiny_recipe, monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # a 1-CPU machine
    trainer = Trainer(tiny_recipe("data.num_workers=3", "train.max_iterations=1"))
    trainer.fit()
    assert trainer.loader.num_workers == 1
    assert "data.num_workers=3, but this process may use 1 CPU(s): loading with 1 worker(s)" in capsys.readouterr().err


def test_a_batch_of_mixed_sizes_names_the_images_and_the_fix(tiny_recipe, tmp_path):
    root = tmp_path / "data"
    write_images(root / "trainA", 2, channels=1, size=16)
    write_images(root / "trainA" / "big", 1, channels=1, size=20)
    write_images(root / "trainB", 3, channels=1, size=16)
    recipe = tiny_recipe("data.dataset=unaligned_folder", *(f"data.args.{k}=null" for k in ("source", "class_A",
                         "class_B", "limit", "load_size", "crop_size")), f"data.args.root={root}",
                         "data.args.channels=1", "data.args.preprocess=none", "data.batch_size=3", "train.max_iterations=1")
    with raises(DataError, "batch-sizes", key="A", says=("big/img_000.png 20x20", "data.batch_size=1")):
        Trainer(recipe).fit()
