"""Translation at full size on every path, forgiving folders, batches, tiles (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from conftest import raises, write_images
from unpaired import cli
from unpaired.errors import DataError, RecipeError
from unpaired.engine.build import build_network
from unpaired.inference.translator import Translator
from unpaired.recipe.load import load_recipe
from unpaired.recipe.resolved import resolve
from unpaired.inference.tiling import ramp, tile_starts
from unpaired.loop.trainer import Trainer
from unpaired.inference.batch import translate_folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained demo run (1-channel resnet, ngf 8) on a folder dataset with non-square test images."""
    tmp = tmp_path_factory.mktemp("translate")
    root = tmp / "data"
    for i, sub in enumerate(("trainA", "trainB")):
        write_images(root / sub, 4, channels=1, size=16, seed=i)
    for sub in ("testA", "testB"):
        (root / sub).mkdir(parents=True)
        Image.new("L", (36, 20), 90).save(root / sub / "wide.png")  # W x H
        Image.new("L", (17, 41), 200).save(root / sub / "odd.png")
    recipe = load_recipe("cyclegan-fashion", [
        "data.dataset=unaligned_folder", *(f"data.args.{k}=null" for k in ("source", "class_A", "class_B", "limit")),
        f"data.args.root={root}", "data.args.load_size=16", "data.args.crop_size=16", "data.num_workers=0",
        *(f"networks.{g}.type=resnet" for g in ("G_AB", "G_BA")), *(f"networks.{g}.args.n_blocks=1" for g in ("G_AB", "G_BA")),
        *(f"networks.{g}.args.ngf=8" for g in ("G_AB", "G_BA")), "networks.D_A.args.ndf=8", "networks.D_B.args.ndf=8",
        "train.max_iterations=1", "train.eval_every=null", "train.report=false", "train.precision=fp32", "device=cpu",
        f"out_dir={tmp / 'run'}"])
    Trainer(recipe).fit()
    return tmp / "run"


@pytest.mark.slow
def test_every_path_keeps_the_input_size(run, tmp_path):
    translator = Translator(run, "AtoB", "cpu")
    assert translator(torch.zeros(1, 1, 30, 27)).shape == (1, 1, 30, 27)  # Python API, odd sizes
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.new("L", (45, 23)).save(src / "a.png")
    Image.new("RGB", (19, 50)).save(src / "sub" / "b.jpg")
    assert cli.main(["translate", str(run), "--input", str(src), "--out", str(tmp_path / "f"), "--device", "cpu"]) == 0
    assert {p.relative_to(tmp_path / "f").as_posix(): Image.open(p).size for p in (tmp_path / "f").rglob("*.*")} == {
        "a.png": (45, 23), "sub/b.jpg": (19, 50)}
    assert Image.open(tmp_path / "f" / "sub" / "b.jpg").mode == "L"  # the 1-channel generator's JPEG stays grey
    assert cli.main(["translate", str(run), "--input", str(src / "a.png"), "--out", str(tmp_path / "one")]) == 0
    assert len(translate_folder(translator, str(src), str(tmp_path / "py"), workers=0).translated) == 2  # str paths
    assert Image.open(tmp_path / "one" / "a.png").size == (45, 23)
    # the run's own test split, which trains at 16x16 crops: full size too
    assert cli.main(["translate", str(run), "--direction", "BtoA", "--out", str(tmp_path / "s")]) == 0
    assert {p.name: Image.open(p).size for p in (tmp_path / "s").iterdir()} == {"wide.png": (36, 20), "odd.png": (17, 41)}


def test_a_bad_file_in_the_middle_is_reported_and_the_rest_translated(run, tmp_path, capsys):
    src = tmp_path / "in"
    write_images(src, 3, channels=1, size=20)
    (src / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (src / "notes.txt").write_text("not an image")
    (src / "._img_000.png").write_bytes(b"AppleDouble")  # macOS metadata: ignored without a word
    os.mkfifo(src / "pipe.png")  # reading it blocked translate for good
    code = cli.main(["translate", str(run), "--input", str(src), "--out", str(tmp_path / "o"), "--workers", "0"])
    assert code == 1
    out = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["img_000.png", "img_002.png"]
    assert out.out.splitlines() == [
        f"AtoB with G_AB: translated 2, skipped 2, failed 1: {tmp_path / 'o'}",
        f"  skipped {src / 'notes.txt'}: not an image (.txt)",
        f"  skipped {src / 'pipe.png'}: not a regular file (a pipe, socket or device)",
        f"  FAILED {src / 'img_001.png'}: cannot decode image: not a valid PNG/JPG/JPEG/WEBP/GIF/BMP/TIF/TIFF file "
        "(cannot identify image file '" + str(src / "img_001.png") + "'). Remove or re-save it.",
    ]
    assert f"warning: skipping {src / 'img_001.png'}: cannot decode image" in out.err


@pytest.mark.slow
def test_images_too_small_for_the_generator_fail_alone(run, tmp_path, capsys):
    # size_divisor 4: a 4x4 image, a 1x1 one and a 3-pixel-wide strip leave 1-pixel feature maps
    # (the norm and the residual blocks' reflection pad cannot run there); 8x8 translates
    src = tmp_path / "in"
    src.mkdir()
    for name, size in (("dot.png", (1, 1)), ("strip.png", (3, 600)), ("four.png", (4, 4)), ("eight.png", (8, 8))):
        Image.new("L", size, 128).save(src / name)
    assert cli.main(["translate", str(run), "--input", str(src), "--out", str(tmp_path / "o"), "--workers", "0",
                     "--scale", "native"]) == 1
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["eight.png"]
    assert f"FAILED {src / 'dot.png'}: a 1x1 image is too small for G_AB, whose feature maps shrink 4x: " \
           "give images of at least 8 pixels a side" in out
    assert f"FAILED {src / 'strip.png'}: a 600x3 image is too small" in out and "translated 1, skipped 0, failed 3" in out
    (tmp_path / "file").write_text("")
    assert cli.main(["translate", str(run), "--input", str(src), "--out", str(tmp_path / "file")]) == 2
    assert f"error: {tmp_path / 'file'}: a file, not a folder; choose another --out" in capsys.readouterr().err
    with raises(RecipeError, "too-small", key="tile", says=("at least 8 pixels",)):
        Translator(run, "AtoB", "cpu", tile=6, overlap=1)


def test_batches_and_workers_give_the_same_images(run, tmp_path):
    src = tmp_path / "in"
    write_images(src, 5, channels=1, size=24)
    write_images(src / "big", 2, channels=1, size=32, seed=3)
    translator = Translator(run, "AtoB", "cpu")
    one = translate_folder(translator, src, tmp_path / "one", batch_size=1, workers=0)
    many = translate_folder(translator, src, tmp_path / "many", batch_size=4, workers=2)
    assert len(one.translated) == len(many.translated) == 7 and not many.failed
    for p in one.translated:
        q = tmp_path / "many" / p.relative_to(tmp_path / "one")
        assert Image.open(p).tobytes() == Image.open(q).tobytes(), p


def test_flatten_and_its_name_clash(run, tmp_path):
    src = tmp_path / "in"
    write_images(src / "day1", 1, channels=1, size=16)
    write_images(src / "day2", 1, channels=1, size=16)
    done = translate_folder(Translator(run, "AtoB", "cpu"), src, tmp_path / "flat", workers=0, flatten=True)
    assert sorted(p.name for p in done.translated) == ["day1_img_000.png", "day2_img_000.png"]
    write_images(src, 1, channels=1, size=16)
    (src / "day1_img_000.png").write_bytes((src / "img_000.png").read_bytes())
    with raises(DataError, "name-clash", key=str(src), says=("day1_img_000.png",)):
        translate_folder(Translator(run, "AtoB", "cpu"), src, tmp_path / "flat2", workers=0, flatten=True)


def test_bf16_inference_is_close_to_fp32(run):
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fp32 = Translator(run, "AtoB", "cpu")(x)
    bf16 = Translator(run, "AtoB", "cpu", precision="bf16")(x)
    assert bf16.dtype == torch.float32 and 0 < (bf16 - fp32).abs().max() < 0.05
    with raises(RecipeError, "needs-gpu", key="precision", says=("use bf16",)):  # as train.precision=fp16
        Translator(run, "AtoB", "cpu", precision="fp16")


# ---------------------------------------------------------------------------------------------
# tiles


def test_tile_starts_and_ramps():
    assert tile_starts(300, 128, 32) == [0, 96, 172]
    assert tile_starts(100, 128, 32) == [0]
    with pytest.raises(ValueError, match=r"the overlap \(128\) must be at least 0 and smaller than the tile \(128\)"):
        tile_starts(300, 128, 128)
    before, after = ramp(10, 3, 0), ramp(10, 0, 3)
    assert before[:3].tolist() == pytest.approx([0.25, 0.5, 0.75]) and after[-3:].tolist() == pytest.approx([0.75, 0.5, 0.25])
    assert torch.allclose(after[-3:] + before[:3], torch.ones(3))  # neighbours' weights sum to 1 over an overlap


def _random_generator_translator():
    recipe = load_recipe("cyclegan-fashion", ["networks.G_AB.type=resnet", "networks.G_AB.args.n_blocks=2",
                                              "networks.G_AB.args.ngf=8"])
    torch.manual_seed(0)
    recipe = resolve(recipe)
    net = build_network(recipe, recipe.networks["G_AB"]).eval()
    return Translator.from_networks(recipe, {"G_AB": net}, "AtoB", torch.device("cpu"))


def _seam(out: torch.Tensor, whole: torch.Tensor, cols: list[int]) -> tuple[float, float]:
    """How much the horizontal steps of ``out`` differ from the whole image's, at ``cols`` and on average."""
    step = lambda t: t[0, 0, :, 1:] - t[0, 0, :, :-1]  # noqa: E731
    diff = (step(out) - step(whole)).abs()
    return float(torch.stack([diff[:, c - 1] for c in cols]).mean()), float(diff.mean())


def test_tiled_output_is_close_to_whole_and_shows_no_seam():
    translator = _random_generator_translator()
    y, x = torch.meshgrid(torch.linspace(0, 6, 200), torch.linspace(0, 9, 300), indexing="ij")
    noise = torch.randn(200, 300, generator=torch.Generator().manual_seed(1))
    image = (0.8 * torch.sin(x) * torch.cos(y) + 0.1 * noise)[None, None]  # 300x200 (W x H)
    translator.tile = 0
    whole = translator(image)
    translator.tile, translator.overlap = 128, 32
    tiled = translator(image)
    assert tiled.shape == whole.shape == (1, 1, 200, 300)
    assert (tiled - whole).abs().mean() < 0.1  # instance norm sees each tile's statistics: close, not equal
    middles = [s + 16 for s in tile_starts(300, 128, 32)[1:]]  # the middle of each overlap
    border, inside = _seam(tiled, whole, middles)
    assert border <= 1.1 * inside  # no seam: the borders are no worse than anywhere else
    translator.overlap = 0  # hard cuts, for contrast: the same measure sees the seam
    cut_border, cut_inside = _seam(translator(image), whole, [128])
    assert cut_border > 1.3 * cut_inside


# VmHWM (this process's peak RSS), not ru_maxrss, which a child inherits from its parent (pytest's, GBs).
PEAK = """
import json, re, sys, torch
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_translate import _random_generator_translator
hwm = lambda: int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
t = _random_generator_translator()
t.tile = int(sys.argv[1])
before = hwm()
y = t(torch.zeros(1, 1, 1500, 2000))
print(json.dumps({{"shape": list(y.shape), "kib": hwm() - before}}))
"""


@pytest.mark.subprocess
def test_tiling_a_large_image_needs_less_memory(tmp_path):
    script = PEAK.format(tests=str(__import__("pathlib").Path(__file__).parent))
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    peaks = {}
    for tile in (0, 256):
        done = subprocess.run([sys.executable, "-c", script, str(tile)], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        peaks[tile] = json.loads(done.stdout)
        assert peaks[tile]["shape"] == [1, 1, 1500, 2000]
    # untiled: several full-size activation maps of ngf=8..32 channels; tiled: a 256x256 tile's
    assert peaks[256]["kib"] < 0.25 * peaks[0]["kib"], peaks
