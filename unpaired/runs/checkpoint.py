"""Checkpoints: written atomically, loaded safely.

Layout of a run directory::

    recipe.yaml                      the resolved recipe
    checkpoints/step_00001000/       one checkpoint (a directory, renamed into place when complete)
        weights.safetensors          all networks' weights; metadata holds the recipe
        state.pt                     optimizers, schedulers, image pools, counters, RNG states
    checkpoints/imported/            an imported model (unpaired import-reference): weights.safetensors
        source.json                  and the files it came from, with their SHA-256; no state.pt
    checkpoints/latest               name of the newest complete checkpoint

Weights are safetensors (no code can run on load); the training state is loaded with
``torch.load(weights_only=True)``, which refuses pickles that would import or call anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from unpaired.errors import CheckpointError

WEIGHTS, STATE, LATEST = "weights.safetensors", "state.pt", "latest"
SOURCE = "source.json"  # an imported checkpoint's origin (unpaired import-reference); such a checkpoint has no state.pt


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


def step_name(step: int) -> str:
    """The name of iteration ``step``'s checkpoint (and of its evaluation folder): ``step_00001234``."""
    return f"step_{step:08d}"


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


def save(ckpt_root: Path, name: str, networks: dict, state: dict | None, recipe_yaml: str, keep: int,
         make_latest: bool = True, extra: dict[str, str] | None = None) -> Path:
    """Write checkpoint ``ckpt_root/name`` atomically, point ``latest`` at it, keep the newest ``keep``.

    ``make_latest=False`` writes a side checkpoint (e.g. ``best``): ``latest`` and the ``step_*``
    checkpoints are left alone. ``extra`` maps file names to text written inside the checkpoint.
    ``state=None`` writes weights only (an imported model: no training state exists).

    A failure (disk full, permissions) removes the partial files and leaves earlier checkpoints and
    ``latest`` as they were.

    Raises:
        CheckpointError: the write failed; the message says which checkpoint stays the latest.
    """
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final, tmp = ckpt_root / name, ckpt_root / f".tmp-{name}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(flat_weights(networks), tmp / WEIGHTS, metadata={"recipe": recipe_yaml, "format": "unpaired/1"})
        if state is not None:
            torch.save(state, tmp / STATE)
        for fname, text in (extra or {}).items():
            (tmp / fname).write_text(text)
        for f in (WEIGHTS, *([STATE] if state is not None else []), *(extra or {})):
            _fsync(tmp / f)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(ckpt_root)
        if make_latest:
            atomic_write_text(ckpt_root / LATEST, name + "\n")
    except (OSError, RuntimeError, SafetensorError) as err:  # torch.save reports a full disk as RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        prev = latest(ckpt_root.parent, missing_ok=True)
        raise CheckpointError(
            f"writing checkpoint {final} failed ({err}); "
            + (f"the previous checkpoint {prev} is intact." if prev else "no earlier checkpoint exists.")
        ) from err
    if make_latest:  # a side checkpoint leaves the step_* ones alone
        for old in sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())[: -max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest(path: Path, missing_ok: bool = False) -> Path | None:
    """The newest complete checkpoint of a run directory, or ``path`` itself if it is a checkpoint.

    Raises:
        CheckpointError: none found (unless ``missing_ok``).
    """
    path = Path(path)
    if (path / WEIGHTS).is_file():
        return path
    root = path / "checkpoints"
    pointer = root / LATEST
    if pointer.is_file():
        cand = root / pointer.read_text().strip()
        if (cand / WEIGHTS).is_file():
            return cand
    done = sorted(p for p in root.glob("step_*") if (p / WEIGHTS).is_file() and (p / STATE).is_file())
    if done:
        return done[-1]
    if missing_ok:
        return None
    raise CheckpointError(f"{path}: no checkpoint found (expected {root}/step_*/{WEIGHTS}). Is it a run directory?")


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` (DDP/DataParallel) and ``_orig_mod.`` (torch.compile) key prefixes."""
    out = {}
    for key, value in state.items():
        while key.startswith(("module.", "_orig_mod.")):
            key = key.split(".", 1)[1]
        out[key.replace(".module.", ".").replace("._orig_mod.", ".")] = value
    return out


def load_weights(path: Path) -> tuple[str, dict[str, dict[str, torch.Tensor]]]:
    """Recipe YAML and per-network state dicts (on the CPU) of a checkpoint or run directory.

    Raises:
        CheckpointError: not found, not a safetensors file, or missing the recipe.
    """
    ckpt = latest(path)
    file = ckpt / WEIGHTS
    try:
        with safe_open(str(file), framework="pt") as f:
            recipe = (f.metadata() or {}).get("recipe")
        flat = load_file(str(file), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{file}: not a readable safetensors checkpoint ({err}).") from err
    if not recipe:
        raise CheckpointError(f"{file}: no recipe in its metadata; it was not written by unpaired.")
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        net, rest = key.split(".", 1)
        nets.setdefault(net, {})[rest] = value
    return recipe, {n: strip_prefixes(s) for n, s in nets.items()}


def source(ckpt: Path) -> dict:
    """What an imported checkpoint's ``source.json`` says (:mod:`unpaired.import_reference`), or ``{}``
    for a checkpoint that training wrote."""
    file = Path(ckpt) / SOURCE
    return json.loads(file.read_text()) if file.is_file() else {}


def load_state(ckpt: Path) -> dict:
    """The training state of a checkpoint, loaded with ``weights_only=True`` on the CPU.

    Raises:
        CheckpointError: missing (for an imported model, which has none, the message says how to
            train from it), or a pickle that would run code (refused, never executed).
    """
    file = Path(ckpt) / STATE
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        if (Path(ckpt) / SOURCE).is_file():
            run = Path(ckpt).parent.parent
            raise CheckpointError(
                f"{ckpt} is an imported model: weights without a training state to resume. Train a new run from "
                f"them: unpaired train {run / 'recipe.yaml'} init_from.path={run} data.args.root=DATA --out NEW_RUN"
            ) from err
        raise CheckpointError(f"{file}: missing; the checkpoint is incomplete.") from err
    except pickle.UnpicklingError as err:  # weights_only refused an object: never executed
        raise CheckpointError(
            f"{file}: refused to load: it holds objects that could run code ({str(err).splitlines()[0]}). "
            "Only load checkpoints you trust."
        ) from err
    except (RuntimeError, EOFError) as err:  # a truncated or overwritten file
        raise CheckpointError(f"{file}: damaged, it cannot be read ({str(err).split('.')[0]}).") from err
