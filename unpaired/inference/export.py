"""Export a run's translation for one direction to ONNX or TorchScript, checked against PyTorch.

The exported model is exactly what :class:`unpaired.inference.Translator` runs for the direction
(a generator, a chain of networks, or an image of the recipe's graph), in eval mode, float32, on
the CPU: images (N, in_channels, H, W) in [-1, 1] with H and W multiples of the networks' size
divisor -> translations (N, out_channels, H, W) in [-1, 1]. Batch, height and width are dynamic;
padding to the divisor (and cropping back), and the resize to the training scale (``training_scale``), are
the caller's, as the file's metadata say.

ONNX goes through ``torch.onnx.export``'s default exporter in torch 2.9+, the ``torch.export``
based one (``dynamo=True``, which needs ``onnxscript``): the TorchScript-based exporter is
deprecated, and ``torch.export`` states "H is a multiple of the divisor" as a shape constraint
(the file's input shape reads ``[batch, C, 4*h, 4*w]``). Opset 18 is the opset of the exporter's
operator library (no version conversion) and the oldest it writes, for the widest choice of
runtimes. The metadata go in the model's ``metadata_props``.

TorchScript (deprecated in torch 2.14, still loadable by ``torch.jit.load`` and LibTorch) is a
trace; its metadata are ``unpaired.json`` among the file's extra files.

After writing, the file is loaded back (onnxruntime's CPU provider, or ``torch.jit.load``) and
run on a random batch of 2 and on a real image (the run's own test split, when readable), at two
sizes that differ from each other and from the export's example size: the largest absolute
difference to PyTorch must stay within a tolerance, else the file is not written.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from unpaired.runs.rundir import checkpoint
from unpaired import __version__
from unpaired.data.build import build_dataset
from unpaired.errors import UnpairedError
from unpaired.inference.translator import Translator
from unpaired.plugin.registry import Registry, closest
from unpaired.inference.tiling import pad_to

#: Export formats and the suffix of their default file name.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: The ONNX opset the exporter writes.
OPSET = 18
#: Largest absolute difference to PyTorch accepted by default.
TOLERANCE = 1e-4
#: Name of the metadata file inside a TorchScript archive.
EXTRA_FILE = "unpaired.json"
#: Packages the ONNX path needs (the exporter, its translation library, the check's runtime).
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


class TranslationModule(nn.Module):
    """What a translator computes for its direction, as one module (its networks registered).

    Args:
        translator: a :class:`~unpaired.inference.Translator` (its networks are shared, not copied).

    Shapes: (N, in_channels, H, W) in [-1, 1], H and W multiples of ``size_divisor`` ->
    (N, out_channels, H, W) in [-1, 1].
    """

    def __init__(self, translator: Translator):
        super().__init__()
        self.nets = nn.ModuleDict(translator.nets)
        self.translate = translator._run

    def forward(self, images: Tensor) -> Tensor:
        return self.translate(images)


class ConditionedTranslation(nn.Module):
    """An entry of the recipe's graph (a multi-domain entry, or an image such as UNSB's one-step
    translation) with its condition fixed: the target domain, the style or noise code
    drawn with the seed (or taken from the reference image) computed once and kept as constants,
    so the exported model is deterministic and its parity with PyTorch is checked on the same
    draw. Shapes as :class:`TranslationModule`.

    Args:
        translator: a :class:`~unpaired.inference.Translator` with its condition set
            (:meth:`~unpaired.inference.Translator.condition`).
    """

    def __init__(self, translator: Translator, size: tuple[int, int]):
        super().__init__()
        self.nets = nn.ModuleDict(translator.nets)
        self.graph, self.image, self.source = translator.graph, translator.image, translator.source
        with torch.no_grad():  # one sample: every value that does not depend on the input image's pixels
            values = translator.values(torch.zeros(1, translator.in_channels, *size))
        fixed = [n for n in values if n != self.source and not self.graph.reads_pixels(n, self.source)
                 and n != self.image]
        self.fixed = list(fixed)
        for i, name in enumerate(fixed):
            self.register_buffer(f"fixed_{i}", values[name])

    def forward(self, images: Tensor) -> Tensor:
        inputs = {self.source: images}
        for i, name in enumerate(self.fixed):
            value = getattr(self, f"fixed_{i}")
            inputs[name] = value.expand(images.shape[0], *value.shape[1:])
        return self.graph.compute([self.image], self.nets, inputs)[self.image]


@dataclass
class Check:
    """One run of the exported file against PyTorch: what went in and the largest difference."""

    label: str
    shape: tuple[int, ...]
    max_abs_diff: float


@dataclass
class ExportResult:
    """What :func:`export` wrote: the file, the metadata read back from it, and its checks."""

    path: Path
    format: str
    metadata: dict[str, str]
    example_shape: tuple[int, ...]
    checks: list[Check]
    tolerance: float

    def text(self) -> str:
        """The report the command prints: file, metadata, one line per check."""
        kind = f"ONNX (opset {OPSET})" if self.format == "onnx" else "TorchScript"
        runtime = "onnxruntime" if self.format == "onnx" else "torch.jit.load"
        lines = [f"exported {self.metadata['direction']} ({self.metadata['network']}) as {kind}: {self.path}",
                 "metadata:"]
        lines += [f"  {key:<17} {value}" for key, value in self.metadata.items()]
        lines.append(f"checked with {runtime} against PyTorch (tolerance {self.tolerance:g}; "
                     f"export example {self.example_shape}, batch, height and width dynamic):")
        lines += [f"  {c.label:<32} {str(c.shape):<18} max abs diff {c.max_abs_diff:.2e}" for c in self.checks]
        return "\n".join(lines) + "\n"


def export(run: str | Path, direction: str = "AtoB", format: str = "onnx", out: str | Path | None = None,
           tolerance: float = TOLERANCE, registry: Registry | None = None, weights: str | None = None,
           to=None, seed: int = 0, reference=None) -> ExportResult:
    """Export a run's translation for ``direction`` and check the file against PyTorch.

    Args:
        run: a run directory (its latest checkpoint) or a checkpoint directory.
        direction: a key of the recipe's ``inference`` section.
        format: ``"onnx"`` or ``"torchscript"``.
        out: the file to write (default ``RUN/export/<direction>.onnx`` or ``.pt``); replaced
            only once the new file has passed its checks.
        tolerance: the largest absolute difference to PyTorch accepted.
        registry: the plugin registry (default: the installed plugins and the run's own).
        weights: a weight set of the checkpoint (``"ema"``) to export instead of the trained weights.
        to, seed, reference: a multi-domain entry's target domain, style seed and reference image:
            the style is computed once and fixed in the file (:class:`ConditionedTranslation`).

    Returns:
        The :class:`ExportResult`: path, metadata as read back from the file, checks.

    Raises:
        UnpairedError: unknown format, an ``out`` with the other format's suffix, a tolerance that
            is not positive, a missing ONNX package, an exporter failure, or a file that fails to
            run or differs from PyTorch by more than ``tolerance`` (then nothing is written).
        CheckpointError: no usable checkpoint in ``run``.
        RecipeError: unknown direction, or a network plugin that is not installed.
    """
    if format not in FORMATS:
        raise UnpairedError(f"unknown format '{format}'.{closest(format, FORMATS)} Formats: {', '.join(FORMATS)}.",
                            key="--format", code="unknown-format")
    if not tolerance > 0:
        raise UnpairedError(f"--tolerance must be a positive number; got {tolerance}.",
                            key="--tolerance", code="bad-arguments")
    if format == "onnx":
        _require_onnx()
    path = Path(out) if out else Path(run) / "export" / f"{direction}{FORMATS[format]}"
    if path.is_dir():
        raise UnpairedError(f"{path}: a folder; --out names the file to write, e.g. {path / (direction + FORMATS[format])}.",
                            key=str(path), code="is-a-folder")
    other = next((f for f, suffix in FORMATS.items() if f != format and path.suffix.lower() == suffix), None)
    if other:  # a TorchScript archive named .onnx would fail (or replace an ONNX export) where it is used
        raise UnpairedError(f"{path}: a file name for --format {other}; name it {path.stem}{FORMATS[format]} for "
                            f"--format {format}, or pass --format {other}.", key=str(path), code="wrong-suffix")
    translator = Translator(run, direction, "cpu", registry, weights=weights, to=to, seed=seed, reference=reference)
    samplers = [n for n in translator.graph.order([translator.image]) if translator.graph.nodes[n].op] \
        if translator.image else []
    if samplers:
        node = translator.graph.nodes[samplers[-1]]
        raise UnpairedError(f"direction '{direction}' makes '{translator.image}' with the op {node.op}, which draws its "
                            "noise inside a loop: a file cannot hold it. Export a direction that is one network pass "
                            "(UNSB's recipes have AtoB_nfe1: the generator's one step, its noise code fixed by --seed).",
                            key=direction, code="not-exportable")
    real_label, real = _real_image(translator)
    # the condition (a reference's style, a code) is computed at the networks' training scale, as
    # translate computes it: a style encoder takes images of its training size only
    module = (ConditionedTranslation(translator, translator.size_for(*real.shape[-2:])) if translator.image
              else TranslationModule(translator)).eval().float()
    example_hw, random_hw = _sizes(tuple(real.shape[-2:]), translator.size_divisor)
    gen = torch.Generator().manual_seed(0)
    channels = translator.in_channels
    example = torch.rand(1, channels, *example_hw, generator=gen) * 2 - 1
    inputs = {"random image (batch of 2)": torch.rand(2, channels, *random_hw, generator=gen) * 2 - 1,
              real_label: real}
    with torch.no_grad():
        out_channels = module(example).shape[1]
        expected = {label: module(x) for label, x in inputs.items()}
    metadata = _metadata(translator, Path(run), out_channels)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:  # a file where a folder of --out should be
        raise UnpairedError(f"{path}: cannot write there, {err.filename} is a file, not a folder; choose another "
                            "--out.", key=str(path), code="bad-out") from err
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write, load = (_write_onnx, _load_onnx) if format == "onnx" else (_write_torchscript, _load_torchscript)
        try:  # the exporters and runtimes raise many kinds of errors (torch.export, onnxscript, tracing)
            write(module, example, translator.size_divisor, metadata, tmp)
            run_file, written = load(tmp)
        except Exception as err:
            raise UnpairedError(f"{format} export of {translator.net_name} failed: {_root_cause(err)} "
                                "(--traceback shows the exporter's error).", key=format, code="export-failed") from err
        written = {**{k: written[k] for k in metadata if k in written}, **written}  # in our order
        checks = [_check(run_file, label, x, expected[label], translator.net_name) for label, x in inputs.items()]
        bad = [c for c in checks if not c.max_abs_diff <= tolerance]  # a NaN difference fails too
        if bad:
            kept = "left as it was" if path.exists() else "not written"
            found = "; ".join(f"{c.label} {c.shape}: {c.max_abs_diff:.2e}" for c in bad)
            raise UnpairedError(f"the {format} export of {translator.net_name} differs from PyTorch by more than "
                                f"the tolerance {tolerance:g} ({found}); {path} {kept}. Pass a larger "
                                "--tolerance to accept it.", key=str(path), code="differs")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, format, written, tuple(example.shape), checks, tolerance)


def _require_onnx() -> None:
    """Raises UnpairedError naming the ONNX packages that are not installed."""
    missing = []
    for name in ONNX_PACKAGES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UnpairedError(f"ONNX export needs {', '.join(missing)}: pip install {' '.join(missing)} "
                            "(or pip install 'unpaired[export]').", key="onnx", code="missing-package")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _root_cause(err: BaseException) -> str:
    """``Type: first line`` of the innermost cause (the exporters wrap the real error in a long one)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {_first_line(err)}"


def _metadata(translator: Translator, run: Path, out_channels: int) -> dict[str, str]:
    """The metadata both formats carry: what goes in and out, and where the weights come from."""
    ckpt = checkpoint.latest(run)
    file = ckpt / checkpoint.weights_file(translator.weights)
    return {
        "direction": translator.direction,
        "network": translator.net_name,
        "in_channels": str(translator.in_channels),
        "out_channels": str(out_channels),
        "value_range": "[-1, 1]",
        "size_divisor": str(translator.size_divisor),
        "input": "images (N, in_channels, H, W) float32 in value_range, H and W multiples of size_divisor: "
                 "pad the bottom and right (reflect) and crop the output back",
        "output": "(N, out_channels, H, W) float32 in value_range",
        "training_scale": (f"{translator.resize.describe()}; resize inputs to it (bicubic, antialiased), translate, "
                           "resize the output back to the input's size" if translator.resize is not None
                           else "not recorded: translate at any size"),
        **({"condition": _condition(translator)} if translator.domain_values else {}),
        "recipe": str(translator.recipe.name),
        "checkpoint": str(ckpt),
        "weights": translator.weights or "raw",
        "weights_sha256": checkpoint.file_sha256(file),
        "unpaired_version": __version__,
        "torch_version": torch.__version__,
    }


def _condition(translator: Translator) -> str:
    style = "the style of a reference image" if translator.reference_value else f"style seed {translator.seed}"
    return f"target domain {translator.target}, {style} (fixed in the file)"


def _real_image(translator: Translator) -> tuple[str, Tensor]:
    """The first image of the run's own test split, padded to the size divisor, as (1, C, H, W)
    with its label; a random 64x64 image (also padded) where the split cannot be read."""
    d, recipe, domain = translator.size_divisor, translator.recipe, translator.source_domain
    why = None
    if domain not in ("A", "B"):
        why = "the direction has no source domain"
    elif OmegaConf.missing_keys(recipe.data):
        why = f"the recipe leaves {', '.join(sorted(OmegaConf.missing_keys(recipe.data)))} unset"
    else:
        try:
            image, name = build_dataset(recipe).domain(domain, "test")[0]
        except (UnpairedError, OSError, IndexError, ValueError) as err:
            why = f"test split not readable: {_first_line(err)}"
        else:
            if image.shape[0] == translator.in_channels:
                return f"test image {name}", pad_to(image[None].float(), d)
            why = f"test image has {image.shape[0]} channel(s), the model takes {translator.in_channels}"
    gen = torch.Generator().manual_seed(1)
    side = math.ceil(64 / d) * d
    return f"random image ({why})", torch.rand(1, translator.in_channels, side, side, generator=gen) * 2 - 1


def _sizes(real_hw: tuple[int, int], d: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Export example (H, W) and random check (H, W): multiples of ``d``, each different from the
    other and from the real image's ``real_hw``, so the checks prove dynamic height and width."""
    h, w = math.ceil(64 / d) * d, math.ceil(96 / d) * d
    while h == w or real_hw in ((h, w), (w, h)):
        h += d
    return (h, w), (w, h)


def _write_onnx(module: nn.Module, example: Tensor, d: int, metadata: dict[str, str], path: Path) -> None:
    from torch.export import Dim

    h, w = (Dim("h"), Dim("w")) if d == 1 else (d * Dim("h"), d * Dim("w"))
    program = torch.onnx.export(module, (example,), input_names=["images"], output_names=["translated"],
                                dynamic_shapes={"images": {0: Dim("batch"), 2: h, 3: w}},
                                opset_version=OPSET, dynamo=True, verbose=False)
    program.model.metadata_props.update(metadata)
    program.save(path, external_data=False)  # one self-contained file (generators are far below 2 GB)


def _load_onnx(path: Path):
    """A function running the file with onnxruntime's CPU provider, and the file's metadata."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])

    return run, dict(session.get_modelmeta().custom_metadata_map)


@contextmanager
def _quiet_torchscript():
    """Silence what is only noise here: TorchScript's deprecation warnings, and the tracer's
    warnings about shape checks (e.g. "H is a multiple of 4") evaluated once at trace time;
    whether the trace holds at other shapes is what the checks at other sizes show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _write_torchscript(module: nn.Module, example: Tensor, d: int, metadata: dict[str, str], path: Path) -> None:
    with _quiet_torchscript(), torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(metadata, indent=2)})


def _load_torchscript(path: Path):
    """A function running the file loaded by ``torch.jit.load``, and the file's metadata."""
    extra = {EXTRA_FILE: ""}
    with _quiet_torchscript():
        loaded = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)

    def run(x: Tensor) -> Tensor:
        with _quiet_torchscript(), torch.no_grad():
            return loaded(x)

    return run, json.loads(extra[EXTRA_FILE])


def _check(run_file, label: str, x: Tensor, expected: Tensor, net_name: str) -> Check:
    """Run the exported file on ``x`` and compare with PyTorch's ``expected``.

    Raises:
        UnpairedError: the file fails at this shape, or gives another shape.
    """
    try:
        got = run_file(x)
    except Exception as err:  # onnxruntime's and TorchScript's errors have no common base
        raise UnpairedError(f"the exported {net_name} cannot run at {tuple(x.shape)} ({label}): "
                            f"{_first_line(err)}", key=label, code="cannot-run") from err
    if got.shape != expected.shape:
        raise UnpairedError(f"the exported {net_name} gives {tuple(got.shape)} at {tuple(x.shape)} ({label}); "
                            f"PyTorch gives {tuple(expected.shape)}: the export fixed a shape.",
                            key=label, code="fixed-shape")
    return Check(label, tuple(x.shape), (got.float() - expected).abs().max().item())
