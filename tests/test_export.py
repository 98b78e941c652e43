"""unpaired export: ONNX and TorchScript files that agree with the Translator, with their metadata."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import onnxruntime
import pytest
import torch
import torch.nn.functional as F

import unpaired
from conftest import TINY
from unpaired.inference import export as export_module
from unpaired.data.build import build_dataset
from unpaired.runs.checkpoint import file_sha256
from unpaired.cli import main
from unpaired.errors import DataError
from unpaired.inference.translator import Translator
from unpaired.recipe.load import load_recipe
from unpaired.loop.trainer import Trainer

#: What the exported files must give, at most this far from the Translator.
BOUND = 1e-4


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny fashion run (2 iterations) with a third direction, AtoA, that is an image of the
    graph made by two networks (rec_A = G_BA(G_AB(real_A)))."""
    out = tmp_path_factory.mktemp("export") / "run"
    Trainer(load_recipe("cyclegan-fashion", TINY + [f"out_dir={out}", "train.max_iterations=2",
                                                   "inference.AtoA=rec_A"])).fit()
    return out


def inputs(translator: Translator) -> dict[str, torch.Tensor]:
    """A random batch of 2 at 30x45 (not multiples of 4: padded by the caller) and the first two
    real test images (28x28) of the source domain; neither is the export's 64x96 example size."""
    data = build_dataset(translator.recipe).domain(translator.source_domain, "test")
    real = torch.stack([data[0][0], data[1][0]])
    return {"random": torch.rand(2, 1, 30, 45, generator=torch.Generator().manual_seed(5)) * 2 - 1, "real": real}


def agree(exported, translator: Translator) -> None:
    """``exported`` (a padded batch -> its translation), called as a user would: pad the bottom and
    right to multiples of the size divisor, crop back; equal to the Translator within BOUND."""
    d = translator.size_divisor
    for name, x in inputs(translator).items():
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, -w % d, 0, -h % d), mode="reflect")
        got = exported(padded)[..., :h, :w]
        want = translator(x)
        assert got.shape == want.shape == (2, 1, h, w), name
        assert (got - want).abs().max().item() < BOUND, name


def expected_metadata(run: Path, direction: str, network: str) -> dict[str, str]:
    ckpt = run / "checkpoints" / "iter_00000002"
    return {
        "direction": direction,
        "network": network,
        "in_channels": "1",
        "out_channels": "1",
        "value_range": "[-1, 1]",
        "size_divisor": "4",
        "input": "images (N, in_channels, H, W) float32 in value_range, H and W multiples of size_divisor: "
                 "pad the bottom and right (reflect) and crop the output back",
        "output": "(N, out_channels, H, W) float32 in value_range",
        "training_scale": "resize_and_crop: 32x32; resize inputs to it (bicubic, antialiased), translate, resize the "
                          "output back to the input's size",
        "recipe": "cyclegan-fashion",
        "checkpoint": str(ckpt),
        "weights": "raw",
        "weights_sha256": file_sha256(ckpt / "weights.safetensors"),
        "unpaired_version": unpaired.__version__,
        "torch_version": torch.__version__,
    }


def load_torchscript(path: Path, extra_files: dict):
    """``torch.jit.load`` without its deprecation warning (TorchScript is deprecated in torch 2.14)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), _extra_files=extra_files)


def check_lines(out: str) -> list[str]:
    """The printed check lines, each with its max abs difference within BOUND."""
    lines = [line for line in out.splitlines() if "max abs diff" in line]
    assert all(float(line.split()[-1]) < BOUND for line in lines), out
    return lines


@pytest.mark.slow
def test_onnx_export_agrees_with_pytorch(run, capsys):
    assert main(["export", str(run), "--direction", "AtoB", "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    path = run / "export" / "AtoB.onnx"
    assert out.startswith(f"exported AtoB (G_AB) as ONNX (opset 18): {path}\n")
    lines = check_lines(out)
    assert [line.split()[:3] for line in lines] == [["random", "image", "(batch"], ["test", "image", "testA_00000.png"]]
    assert "(2, 1, 96, 64)" in lines[0] and "(1, 1, 28, 28)" in lines[1] and "example (1, 1, 64, 96)" in out

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == expected_metadata(run, "AtoB", "G_AB")
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("images", ["batch", 1, "4*h", "4*w"])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("translated", ["batch", 1, "4*h", "4*w"])]
    agree(lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), Translator(run, "AtoB", "cpu", scale="native"))
    assert not list(path.parent.glob(".*"))  # no temporary file left


def test_torchscript_export_agrees_with_pytorch(run, tmp_path, capsys):
    path = tmp_path / "g_ba.pt"
    assert main(["export", str(run), "--direction", "BtoA", "--format", "torchscript", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"exported BtoA (G_BA) as TorchScript: {path}\n") and len(check_lines(out)) == 2
    extra = {"unpaired.json": ""}
    model = load_torchscript(path, extra)
    assert json.loads(extra["unpaired.json"]) == expected_metadata(run, "BtoA", "G_BA")
    with torch.no_grad():
        agree(model, Translator(run, "BtoA", "cpu", scale="native"))


def test_torchscript_export_of_a_graph_image(run, tmp_path, capsys, monkeypatch):
    """AtoA is rec_A, made by two networks; with the test split unreadable, a random image stands in."""

    def unreadable(recipe):
        raise DataError("datasets/x: not found.")

    monkeypatch.setattr(export_module, "build_dataset", unreadable)
    path = tmp_path / "cycle.pt"
    assert main(["export", str(run), "--direction", "AtoA", "--format", "torchscript", "--out", str(path)]) == 0
    lines = check_lines(capsys.readouterr().out)
    assert lines[1].startswith("  random image (test split not readable: datasets/x: not found.) (1, 1, 64, 64)")
    model = load_torchscript(path, {})
    with torch.no_grad():
        agree(model, Translator(run, "AtoA", "cpu", scale="native"))


def test_a_file_that_differs_is_refused(run, tmp_path, capsys, monkeypatch):
    load = export_module._load_torchscript

    def off_by_1e_3(path):
        run_file, metadata = load(path)
        return (lambda x: run_file(x) + 1e-3), metadata

    monkeypatch.setattr(export_module, "_load_torchscript", off_by_1e_3)
    path = tmp_path / "g.pt"
    args = ["export", str(run), "--format", "torchscript", "--out", str(path)]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "error: the torchscript export of G_AB differs from PyTorch by more than the tolerance 0.0001 "
        "(random image (batch of 2) (2, 1, 96, 64): 1.00e-03; test image testA_00000.png (1, 1, 28, 28): 1.00e-03); "
        f"{path} not written. Pass a larger --tolerance to accept it.\n")
    assert list(tmp_path.iterdir()) == []
    path.write_text("an earlier export")
    assert main(args) == 2 and "left as it was" in capsys.readouterr().err
    assert path.read_text() == "an earlier export"
    assert main([*args, "--tolerance", "2e-3"]) == 0 and path.read_bytes()[:2] == b"PK"  # a TorchScript zip


@pytest.mark.parametrize("args, message", [
    (["--format", "onxx"], "unknown format 'onxx'. Did you mean 'onnx'? Formats: onnx, torchscript."),
    (["--direction", "AtoC"], "direction 'AtoC' is not in the recipe's inference section. Did you mean 'AtoB'? "
                              "Known: AtoB, BtoA, AtoA."),
    (["--tolerance", "0"], "--tolerance must be a positive number; got 0.0."),
    (["--out", "/tmp"], "/tmp: a folder; --out names the file to write, e.g. /tmp/AtoB.onnx."),
    (["--format", "torchscript", "--out", "/tmp/g.onnx"],
     "/tmp/g.onnx: a file name for --format onnx; name it g.pt for --format torchscript, or pass --format onnx."),
    (["--out", "/tmp/g.PT"], "/tmp/g.PT: a file name for --format torchscript; name it g.onnx for --format onnx, or "
                             "pass --format torchscript."),
])
def test_errors(run, capsys, args, message):
    assert main(["export", str(run), *args]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_missing_run_and_missing_onnxruntime(run, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nope"
    assert main(["export", str(missing), "--format", "torchscript"]) == 2
    assert capsys.readouterr().err == (f"error: {missing}: no checkpoint found (expected {missing}/checkpoints/iter_*/"
                                       "weights.safetensors). Is it a run directory?\n")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    assert main(["export", str(run)]) == 2
    assert capsys.readouterr().err == ("error: ONNX export needs onnxruntime: pip install onnxruntime "
                                       "(or pip install 'unpaired[export]').\n")


def test_an_exporter_failure_is_one_line(run, tmp_path, capsys, monkeypatch):
    def broken(module, example, divisor, metadata, path):
        path.write_bytes(b"half a file")
        try:
            raise ValueError("unsupported operator aten::foo\n(details)")
        except ValueError as err:
            raise RuntimeError("Failed to export the model. Next steps:\n- ...") from err

    monkeypatch.setattr(export_module, "_write_torchscript", broken)
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "g.pt")]) == 2
    assert capsys.readouterr().err == ("error: torchscript export of G_AB failed: ValueError: unsupported operator "
                                       "aten::foo (--traceback shows the exporter's error).\n")
    assert list(tmp_path.iterdir()) == []
