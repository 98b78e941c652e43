"""Checkpoints: one writer (atomic: a checkpoint is complete or absent), safe loaders.

A checkpoint is a directory under ``<run>/checkpoints/`` (:mod:`unpaired.runs.rundir` has the
whole layout)::

    iter_00001000/                   one checkpoint, renamed into place when complete
        weights.safetensors          every network's weights (and trained loss modules'); metadata
                                     holds the recipe and the layout's format
        weights.<set>.safetensors    a weight set a handler keeps, e.g. weights.ema.safetensors
        state.pt                     optimizers, schedules, image pools, counters, RNG states, the
                                     handlers' states
        SHA256SUMS                   each file's SHA-256 (``sha256sum -c SHA256SUMS``), checked
                                     when a file is loaded
    best/                            the same, for the best evaluation (eval.json beside)
    imported/                        an imported model (unpaired import-reference): weights and
        source.json                  the files they came from; no state.pt
    latest                           name of the newest complete checkpoint

Weights are safetensors (no code can run on load); the training state is loaded with
``torch.load(weights_only=True)``, which refuses pickles that would import or call anything.

The layout's format is ``unpaired/2``: iteration counters (``iteration``, ``epoch_iteration``,
``epoch_length``), checkpoints named ``iter_*``, handlers' states and weight sets. Checkpoints of
format ``unpaired/1`` (counters ``step``, ``epoch_step``; names ``step_*``) load as well, and so
do the earliest ones, whose optimizers, schedules and pools sat beside the counters (before the
executor held them).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, safe_open, save_file

from unpaired.errors import CheckpointError

WEIGHTS, STATE, LATEST = "weights.safetensors", "state.pt", "latest"
SUMS = "SHA256SUMS"  # each file's SHA-256, as ``sha256sum`` writes them (``sha256sum -c SHA256SUMS`` checks)
SOURCE = "source.json"  # an imported checkpoint's origin (unpaired import-reference); such a checkpoint has no state.pt
#: The layout written now (in the weights' metadata).
FORMAT = "unpaired/2"
#: A checkpoint of iteration N: ``iter_%08d`` (``step_%08d`` before format unpaired/2).
ITERATION_NAME = re.compile(r"(?:iter|step)_(\d+)")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(file: Path, data: bytes) -> None:
    """Check ``data``, the bytes just read from ``file`` (hashed as loaded: one read of the file),
    against the SHA-256 its checkpoint's ``SHA256SUMS`` lists for it; a file it does not list (or a
    checkpoint written before the sums) passes.

    Raises:
        CheckpointError: the file's SHA-256 differs from the one written with it (code
            ``checksum-mismatch``): it changed after the checkpoint was complete.
    """
    sums = Path(file).parent / SUMS
    if not sums.is_file():
        return
    listed = dict(reversed(line.split("  ", 1)) for line in sums.read_text().splitlines() if "  " in line)
    expected = listed.get(Path(file).name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"{file}: its SHA-256 is not the one written with the checkpoint ({sums}): the file "
                              "changed after it was complete (a disk or copy error, or an edit), and would load "
                              "damaged weights or state.", key=str(file), code="checksum-mismatch")


def iteration_name(iteration: int) -> str:
    """The name of iteration ``iteration``'s checkpoint (and evaluation folder): ``iter_00001234``."""
    return f"iter_{iteration:08d}"


def weights_file(weights: str | None = None) -> str:
    """The file of a weight set: ``weights.safetensors`` (the trained weights, ``None`` or
    ``"raw"``) or ``weights.<set>.safetensors``."""
    return WEIGHTS if weights in (None, "raw") else f"weights.{weights}.safetensors"


def iterations(root: Path) -> list[Path]:
    """The complete iteration checkpoints in ``root`` (a run's checkpoints/), oldest first."""
    found = [p for p in root.glob("*_*") if ITERATION_NAME.fullmatch(p.name) and (p / WEIGHTS).is_file()
             and (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(ITERATION_NAME.fullmatch(p.name).group(1)))


def free_space(folder: Path) -> str:
    """``"N MiB free on <folder>"``: what a failed write reports."""
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free on {folder}"
    except OSError:
        return f"the free space on {folder} unknown"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def flat_weights(networks: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """``{"G_AB.model.1.weight": tensor, ...}``: every network's state, contiguous, on the CPU."""
    return {
        f"{name}.{key}": t.detach().to("cpu").contiguous()
        for name, net in networks.items()
        for key, t in net.state_dict().items()
    }


def write(ckpt_root: Path, name: str, networks: dict, state: dict | None, recipe_yaml: str, keep: int,
          make_latest: bool = True, extra: dict[str, str] | None = None,
          weight_sets: dict[str, dict] | None = None) -> Path:
    """Write checkpoint ``ckpt_root/name`` atomically, point ``latest`` at it, keep the newest ``keep``.

    Args:
        networks: name -> module, saved in ``weights.safetensors``.
        state: the training state (``state.pt``); None writes weights only (an imported model).
        recipe_yaml: the run's recipe, kept in the weights' metadata.
        keep: iteration checkpoints kept (the newest); ``best`` and others are never pruned.
        make_latest: False writes a side checkpoint (``best``): ``latest`` and the iteration
            checkpoints are left alone.
        extra: file name -> text written inside the checkpoint.
        weight_sets: set name -> {network: module}, each saved as ``weights.<set>.safetensors``.

    A failure (disk full, permissions) removes the partial files and leaves earlier checkpoints and
    ``latest`` as they were.

    Raises:
        CheckpointError: the write failed; the message says which checkpoint stays the latest.
    """
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final, tmp = ckpt_root / name, ckpt_root / f".tmp-{name}"
    metadata = {"recipe": recipe_yaml, "format": FORMAT}
    files = [WEIGHTS]
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(flat_weights(networks), tmp / WEIGHTS, metadata=metadata)
        for set_name, modules in (weight_sets or {}).items():
            files.append(weights_file(set_name))
            save_file(flat_weights(modules), tmp / files[-1], metadata={**metadata, "weight_set": set_name})
        if state is not None:
            torch.save(state, tmp / STATE)
            files.append(STATE)
        for fname, text in (extra or {}).items():
            (tmp / fname).write_text(text)
            files.append(fname)
        for f in files:
            _fsync(tmp / f)
        # what was written, to tell later damage (a disk, a copy, an edit) from a checkpoint that loads
        (tmp / SUMS).write_text("".join(f"{file_sha256(tmp / f)}  {f}\n" for f in files))
        _fsync(tmp / SUMS)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(ckpt_root)
        if make_latest:
            atomic_write_text(ckpt_root / LATEST, name + "\n")
    except (OSError, RuntimeError, SafetensorError) as err:  # torch.save reports a full disk as RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        prev = latest(ckpt_root.parent, missing_ok=True)
        raise CheckpointError(
            f"writing checkpoint {final} failed ({str(err).splitlines()[0]}; {free_space(ckpt_root)}); "
            + (f"the previous checkpoint {prev} is intact. Free some space (or fix the folder's permissions), "
               "then resume." if prev else "no earlier checkpoint exists. Free some space (or fix the folder's "
               "permissions), then train the run again."),
            key=str(final), code="write-failed",
        ) from err
    if make_latest:  # a side checkpoint leaves the iteration ones alone
        for old in iterations(ckpt_root)[: -max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest(path: Path, missing_ok: bool = False) -> Path | None:
    """The newest complete checkpoint of a run directory, or ``path`` itself if it is a checkpoint
    (or the checkpoint of ``path``, its ``weights.safetensors``).

    Raises:
        CheckpointError: none found (unless ``missing_ok``), or another file given.
    """
    path = Path(path)
    if path.is_file():  # a checkpoint's file given for its checkpoint
        if path.name != WEIGHTS:
            raise CheckpointError(f"{path}: a file; give its checkpoint folder ({path.parent}) or the run directory.",
                                  key=str(path), code="not-a-checkpoint")
        path = path.parent
    if (path / WEIGHTS).is_file():
        return path
    root = path / "checkpoints"
    pointer = root / LATEST
    if pointer.is_file():
        cand = root / pointer.read_text().strip()
        if (cand / WEIGHTS).is_file():
            return cand
    done = iterations(root)
    if done:
        return done[-1]
    if missing_ok:
        return None
    raise CheckpointError(f"{path}: no checkpoint found (expected {root}/iter_*/{WEIGHTS}). Is it a run directory?",
                          key=str(path), code="no-checkpoint")


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` (DDP/DataParallel) and ``_orig_mod.`` (torch.compile) key prefixes."""
    out = {}
    for key, value in state.items():
        while key.startswith(("module.", "_orig_mod.")):
            key = key.split(".", 1)[1]
        out[key.replace(".module.", ".").replace("._orig_mod.", ".")] = value
    return out


def _read(file: Path) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """A weights file's metadata and per-network state dicts (on the CPU)."""
    try:
        data = Path(file).read_bytes()
        with safe_open(str(file), framework="pt") as f:  # reads only the header
            metadata, order = f.metadata() or {}, list(f.keys())
        tensors = load(data)
        flat = {k: tensors[k] for k in order}  # load() gives the data's order; keep the header's, as load_file
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{file}: not a readable safetensors checkpoint ({err}).", key=str(file),
                              code="unreadable") from err
    verify(file, data)
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        net, rest = key.split(".", 1)
        nets.setdefault(net, {})[rest] = value
    return metadata, {n: strip_prefixes(s) for n, s in nets.items()}


def weight_sets(ckpt: Path) -> list[str]:
    """The weight sets a checkpoint holds besides the trained weights (``["ema"]``)."""
    return sorted(p.name[len("weights."):-len(".safetensors")] for p in Path(ckpt).glob("weights.*.safetensors"))


def load_weights(path: Path, weights: str | None = None) -> tuple[str, dict[str, dict[str, torch.Tensor]]]:
    """Recipe YAML and per-network state dicts (on the CPU) of a checkpoint or run directory.

    Args:
        weights: a weight set (``"ema"``) to use instead of the trained weights for the networks it
            holds; None or ``"raw"``: the trained weights.

    Raises:
        CheckpointError: not found, not a safetensors file, missing the recipe, or no such weight set
            (names those there are).
    """
    ckpt = latest(path)
    metadata, nets = _read(ckpt / WEIGHTS)
    recipe = metadata.get("recipe")
    if not recipe:
        raise CheckpointError(f"{ckpt / WEIGHTS}: no recipe in its metadata; it was not written by unpaired.",
                              key=str(ckpt / WEIGHTS), code="not-unpaired")
    if weights not in (None, "raw"):
        file = ckpt / weights_file(weights)
        if not file.is_file():
            sets = ", ".join(["raw", *weight_sets(ckpt)])
            raise CheckpointError(f"{ckpt}: no weight set '{weights}' (it holds: {sets}). A run keeps an 'ema' set when "
                                  "its recipe has an ema: section (or a handler keeps one).", key=str(ckpt),
                                  code="no-weight-set")
        nets.update(_read(file)[1])
    return recipe, nets


def source(ckpt: Path) -> dict:
    """What an imported checkpoint's ``source.json`` says (:mod:`unpaired.runs.import_reference`), or
    ``{}`` for a checkpoint that training wrote."""
    file = Path(ckpt) / SOURCE
    return json.loads(file.read_text()) if file.is_file() else {}


#: What the executor's state holds (the earliest layout kept these at the top level).
EXECUTOR_STATE = ("optimizers", "schedulers", "scalers", "pools", "epoch_loss")


def upgrade_state(state: dict) -> dict:
    """An older training state in the current layout (in place): format ``unpaired/1``'s counters
    ``step``/``epoch_step`` become ``iteration``/``epoch_iteration``; the earliest layout's
    optimizers, schedules, scalers, pools and the non-finite count move into ``executor``; no
    handlers' states."""
    counters = state.setdefault("counters", {})
    for old, new in (("step", "iteration"), ("epoch_step", "epoch_iteration")):
        if old in counters:
            counters[new] = counters.pop(old)
    if "executor" not in state:
        state["executor"] = {k: state.pop(k, {}) for k in EXECUTOR_STATE}
        state["executor"]["nonfinite_total"] = counters.pop("nonfinite_total", 0)
    state.setdefault("handlers", {})
    return state


def load_state(ckpt: Path) -> dict:
    """The training state of a checkpoint, loaded with ``weights_only=True`` on the CPU, in the
    current layout (:func:`upgrade_state`).

    Raises:
        CheckpointError: missing (for an imported model, which has none, the message says how to
            train from it), or a pickle that would run code (refused, never executed).
    """
    file = Path(ckpt) / STATE
    try:
        data = file.read_bytes()
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        if (Path(ckpt) / SOURCE).is_file():
            run = Path(ckpt).parent.parent
            raise CheckpointError(
                f"{ckpt} is an imported model: weights without a training state to resume. Train a new run from "
                f"them: unpaired train {run / 'recipe.yaml'} init_from.path={run} data.args.root=DATA --out NEW_RUN",
                key=str(ckpt), code="imported",
            ) from err
        raise CheckpointError(f"{file}: missing; the checkpoint is incomplete.",
                              key=str(file), code="incomplete") from err
    except pickle.UnpicklingError as err:  # weights_only refused an object: never executed
        raise CheckpointError(
            f"{file}: refused to load: it holds objects that could run code ({str(err).splitlines()[0]}). "
            "Only load checkpoints you trust.", key=str(file), code="unsafe"
        ) from err
    except (RuntimeError, EOFError) as err:  # a truncated or overwritten file
        raise CheckpointError(f"{file}: damaged, it cannot be read ({str(err).split('.')[0]}).", key=str(file),
                              code="damaged") from err
    verify(file, data)
    return upgrade_state(state)
