"""Runs made from other runs: a new run's networks from another's weights (``init_from``), a fork
of a run into a new directory, and which recipe changes a resumed run can take.

The source run is only ever read: ``init_from`` loads its weights into a new run, and a fork copies
its latest checkpoint (and its log up to that checkpoint) into the new run directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from . import checkpoint
from .errors import CheckpointError, RecipeError

LOG = "log.jsonl"


def init_weights(recipe: DictConfig, nets: dict[str, nn.Module]) -> tuple[Path, str, dict[str, dict[str, Tensor]]]:
    """The weights that ``recipe.init_from`` names, checked against the recipe's built networks.

    Args:
        recipe: a recipe whose ``init_from`` is set.
        nets: its networks by name, built (on any device, the meta device included: only the
            names and shapes of their tensors are compared).

    Returns:
        The source checkpoint, the SHA-256 of its weights file, and ``{network: state dict}`` of
        the chosen networks (``init_from.networks``, or every network of the recipe).

    Raises:
        RecipeError: no checkpoint at ``init_from.path``, a weights file whose SHA-256 is not
            ``init_from.sha256``, a chosen network the recipe does not define or the checkpoint
            does not hold, or weights whose names or shapes do not fit (naming the network and
            the shapes).
    """
    spec = recipe.init_from
    try:
        ckpt = checkpoint.latest(Path(spec.path))
        _, weights = checkpoint.load_weights(ckpt)
    except CheckpointError as err:
        raise RecipeError(f"init_from.path: {err}") from err
    sha = checkpoint.file_sha256(ckpt / checkpoint.WEIGHTS)
    if spec.sha256 and spec.sha256 != sha:
        raise RecipeError(f"init_from.sha256: {ckpt / checkpoint.WEIGHTS} has SHA-256 {sha}, not the recorded "
                          f"{spec.sha256} (other weights than the recipe was saved with, or a base recipe's record); "
                          "set init_from.sha256=null to start from these.")
    chosen = list(spec.networks) or list(nets)
    unknown = [n for n in chosen if n not in nets]
    if unknown:
        raise RecipeError(f"init_from.networks: {', '.join(unknown)} not defined in this recipe; its networks are "
                          f"{', '.join(nets)}.")
    absent = [n for n in chosen if n not in weights]
    if absent:
        held = [n for n in weights if n in nets]
        raise RecipeError(f"init_from.networks: {ckpt} holds no weights for {', '.join(absent)}; choose among "
                          f"{', '.join(held) or 'none'} (e.g. init_from.networks=[{','.join(held)}]).")
    for name in chosen:
        mine = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in weights[name].items()}
        bad = next((k for k in dict.fromkeys([*mine, *theirs]) if mine.get(k) != theirs.get(k)), None)
        if bad is not None:
            raise RecipeError(
                f"init_from: network '{name}' does not fit: '{bad}' is {theirs.get(bad, 'absent')} in {ckpt} but "
                f"{mine.get(bad, 'absent')} in this recipe; give networks.{name} the source run's type and args, "
                "or leave it out of init_from.networks."
            )
    return ckpt, sha, {n: weights[n] for n in chosen}


def _changed(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain containers (a key on one side only too)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in dict.fromkeys([*a, *b]) for k in _changed(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [prefix[:-1]] if a != b else []


def _fixed(key: str) -> bool:
    """Whether a restored run cannot take a change of ``key``: what its weights, optimizer states
    and schedule position were made for."""
    p = key.split(".")
    if p[0] == "networks":
        return len(p) == 2 or p[2] in ("type", "role", "args")
    if p[0] == "steps":
        return len(p) == 2 or p[2] == "networks" or p[2:4] == ["optimizer", "type"]
    return p[0] in ("images", "init_from") or key == "train.scheduler.interval"


def fixed_changes(saved: DictConfig, recipe: DictConfig) -> list[str]:
    """The keys ``recipe`` changes from a run's ``saved`` recipe that a resumed run cannot take:
    a network's ``type``, ``role`` or ``args`` (or a network added or removed), ``images``, a step
    added or removed or its ``networks`` or ``optimizer.type``, ``train.scheduler.interval`` and
    ``init_from``. Everything else (optimizer args, the schedule, epochs, data, loss weights, ...)
    applies on resume."""
    plain = [OmegaConf.to_container(r, resolve=True) for r in (saved, recipe)]
    return [k for k in _changed(*plain) if _fixed(k)]


def fork(ckpt: Path, step: int, new_dir: Path) -> None:
    """Start run directory ``new_dir`` from checkpoint ``ckpt`` (iteration ``step``) of another run:
    a copy of the checkpoint, made ``latest``, and the other run's ``log.jsonl`` up to ``step``.
    The other run is only read.

    Raises:
        OSError: the copy failed (a partial copy is left as ``.tmp-*``, which no run reads).
    """
    root = new_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{ckpt.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ckpt, tmp)
    os.replace(tmp, root / ckpt.name)
    checkpoint.atomic_write_text(root / checkpoint.LATEST, ckpt.name + "\n")
    cut_log(ckpt.parent.parent / LOG, step, new_dir / LOG)


def cut_log(log: Path, step: int, out: Path) -> None:
    """Write to ``out`` (atomically; it may be ``log`` itself) the records of ``log`` up to
    iteration ``step``: the log of a run restored at ``step``. Records a killed run logged after
    its last checkpoint go, and so does a line cut short by the kill. No ``log``: nothing written."""
    if not log.is_file():
        return
    kept = []
    for line in log.read_text().splitlines(keepends=True):
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    checkpoint.atomic_write_text(out, "".join(kept))
