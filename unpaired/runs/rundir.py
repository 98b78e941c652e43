"""A run directory: where everything of a run lives, and the one chain that loads it back.

Layout (the one place that knows it)::

    recipe.yaml             the resolved recipe the run trains
    log.jsonl               one record a line: loss means, learning rates, diagnostics, evaluations
    run.json                when, on what hardware, how it ended, where the time went
    checkpoints/            iter_XXXXXXXX/, best/, latest (:mod:`unpaired.runs.checkpoint`)
    samples/                iter_XXXXXXXX.png: sample grids
    eval/<checkpoint>/      metrics.json, metrics.md
    tb/                     TensorBoard events
    export/                 exported translations (ONNX, TorchScript)
    report.html             the run's report

The load chain — the checkpoint (latest, or the one named), its weights (or a weight set), its
recipe, the overrides — is :meth:`RunDir.load`; resume, evaluate, translate, export, ``init_from``
and report go through it. Runs written before format ``unpaired/2`` (``step_*`` checkpoints,
``"step"`` in log records) load too.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig
from torch import Tensor

from unpaired.recipe.load import apply_overrides, from_yaml
from unpaired.runs import checkpoint

BEST = "best"
#: The scores that made ``checkpoints/best`` the best, inside it.
BEST_FILE = "eval.json"


class RunDir:
    """The files of one run directory (nothing is created by asking for a path).

    Args:
        path: the run directory.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def log(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def info(self) -> Path:
        return self.path / "run.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def sample(self, iteration: int) -> Path:
        """The sample grid of iteration ``iteration``."""
        return self.samples / f"{checkpoint.iteration_name(iteration)}.png"

    def checkpoint(self, iteration: int) -> Path:
        """The checkpoint of iteration ``iteration``."""
        return self.checkpoints / checkpoint.iteration_name(iteration)

    def evaluation(self, name: str) -> Path:
        """The folder of the evaluation of checkpoint ``name`` (``iter_00001000``, ``best``)."""
        return self.path / "eval" / name

    def export(self, name: str) -> Path:
        return self.path / "export" / name

    def latest(self, missing_ok: bool = False) -> Path | None:
        """The newest complete checkpoint (:func:`unpaired.runs.checkpoint.latest`)."""
        return checkpoint.latest(self.path, missing_ok=missing_ok)

    def holds_run(self) -> bool:
        """Whether a run has checkpointed here."""
        return self.path.is_dir() and self.latest(missing_ok=True) is not None

    def cut_log(self, iteration: int, source: Path | None = None) -> None:
        """Rewrite the log (atomically) with the records of ``source`` (default: this run's log) up
        to iteration ``iteration``: the log of a run restored there. Records a killed run logged
        after its last checkpoint go, and so does a line cut short by the kill; records of runs
        before format ``unpaired/2`` get ``"iteration"`` for their ``"step"``. No log: nothing written."""
        source = source or self.log
        if not source.is_file():
            return
        kept = []
        for line in source.read_text().splitlines():
            try:
                record = read_record(line)
            except (ValueError, KeyError, TypeError):
                continue
            if record["iteration"] <= iteration:
                kept.append(json.dumps(record) + "\n")
        checkpoint.atomic_write_text(self.log, "".join(kept))

    def fork_from(self, ckpt: Path, iteration: int) -> None:
        """Start this run directory from checkpoint ``ckpt`` (iteration ``iteration``) of another
        run: a copy of the checkpoint, made ``latest``, and the other run's log up to ``iteration``.
        The other run is only read.

        Raises:
            OSError: the copy failed (a partial copy is left as ``.tmp-*``, which no run reads).
        """
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoints / f".tmp-{ckpt.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(ckpt, tmp)
        os.replace(tmp, self.checkpoints / ckpt.name)
        checkpoint.atomic_write_text(self.checkpoints / checkpoint.LATEST, ckpt.name + "\n")
        self.cut_log(iteration, RunDir(ckpt.parent.parent).log)

    def load(self, overrides=(), weights: str | None = None) -> "LoadedRun":
        """The latest checkpoint's recipe (with ``overrides``) and weights: :func:`load`."""
        return load(self.path, overrides, weights)


def read_record(line: str) -> dict:
    """One log line as a record, ``"step"`` of runs before format ``unpaired/2`` as ``"iteration"``.

    Raises:
        ValueError, KeyError, TypeError: not a record (a line cut short, say).
    """
    record = json.loads(line)
    if "iteration" not in record:
        record = {"iteration": record.pop("step"), **record}
    int(record["iteration"])
    return record


@dataclass
class LoadedRun:
    """A checkpoint loaded back: where it is, its recipe, its weights.

    Attributes:
        checkpoint: the checkpoint directory.
        run: its run directory (None for a checkpoint outside one).
        recipe: the saved recipe with the overrides applied (not yet resolved).
        weights: network -> state dict (on the CPU), the weight set asked for where it has them.
        weight_set: that set (None: the trained weights).
    """

    checkpoint: Path
    run: RunDir | None
    recipe: DictConfig
    weights: dict[str, dict[str, Tensor]]
    weight_set: str | None = None

    def state(self) -> dict:
        """The training state (:func:`unpaired.runs.checkpoint.load_state`)."""
        return checkpoint.load_state(self.checkpoint)

    def counters(self) -> dict:
        """Iteration and epoch of the checkpoint (empty for an imported model)."""
        if not (self.checkpoint / checkpoint.STATE).is_file():
            return {}
        return self.state().get("counters", {})


def load(path: str | Path, overrides=(), weights: str | None = None) -> LoadedRun:
    """Load a run directory's latest checkpoint, or a checkpoint directory.

    Args:
        path: a run directory or one of its checkpoints (``RUN/checkpoints/best``).
        overrides: ``key=value`` changes to the saved recipe.
        weights: a weight set of the checkpoint (``"ema"``); None or ``"raw"``: the trained weights.

    Raises:
        CheckpointError: no checkpoint, an unreadable one, or no such weight set.
        RecipeError: the saved recipe does not take the overrides.
    """
    ckpt = checkpoint.latest(Path(path))
    recipe_yaml, state = checkpoint.load_weights(ckpt, weights)
    run = RunDir(ckpt.parent.parent) if ckpt.parent.name == "checkpoints" else None
    recipe = apply_overrides(from_yaml(recipe_yaml), overrides) if overrides else from_yaml(recipe_yaml)
    return LoadedRun(ckpt, run, recipe, state, None if weights in (None, "raw") else weights)


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is one checkpoint (rather than a run directory)."""
    return (Path(path) / checkpoint.WEIGHTS).is_file()
