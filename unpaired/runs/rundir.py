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
    .lock                   held by the process writing the run (:meth:`RunDir.lock`)

The load chain — the checkpoint (latest, or the one named), its weights (or a weight set), its
recipe, the overrides — is :meth:`RunDir.load`; resume, evaluate, translate, export, ``init_from``
and report go through it. Runs written before format ``unpaired/2`` (``step_*`` checkpoints,
``"step"`` in log records) load too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run directory is then not guarded
    fcntl = None

from omegaconf import DictConfig
from torch import Tensor

from unpaired.errors import CheckpointError
from unpaired.recipe.load import apply_overrides, from_yaml
from unpaired.runs import checkpoint

BEST = "best"
#: What a run writes at the top of its directory: a folder holding any of these and no run.json
#: holds someone else's files, which a run must not replace.
RUN_FILES = ("recipe.yaml", "log.jsonl", "report.html", "checkpoints", "samples", "eval", "tb")
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

    def lock(self) -> "RunLock":
        """Become the one writer of this run directory (created if need be).

        Raises:
            CheckpointError: another process writes it (names its pid, host and start), code ``locked``.
        """
        return RunLock(self.path)

    def foreign_files(self) -> list[str]:
        """Files of :data:`RUN_FILES` here that no run wrote (the folder has no run.json)."""
        if self.info.exists():
            return []
        return [name for name in RUN_FILES if (self.path / name).exists()]

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
            OSError: the copy failed (a full disk): the partial copy is removed, and the folder is left
                as it was before (so the fork can be tried again).
        """
        made = not self.checkpoints.exists()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoints / f".tmp-{ckpt.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(ckpt, tmp)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if made:
                self.checkpoints.rmdir()
            raise
        os.replace(tmp, self.checkpoints / ckpt.name)
        checkpoint.atomic_write_text(self.checkpoints / checkpoint.LATEST, ckpt.name + "\n")
        self.cut_log(iteration, RunDir(ckpt.parent.parent).log)

    def load(self, overrides=(), weights: str | None = None) -> "LoadedRun":
        """The latest checkpoint's recipe (with ``overrides``) and weights: :func:`load`."""
        return load(self.path, overrides, weights)


class RunLock:
    """An exclusive lock on ``<run>/.lock`` (``flock``), with the holder's pid, host and start time
    written in the file for the message a second process gets. The operating system drops the lock
    when its process ends, however it ends, so a lock never outlives a killed run (no stale lock).

    Raises:
        CheckpointError: held by another process (code ``locked``).
    """

    def __init__(self, run: Path):
        run.mkdir(parents=True, exist_ok=True)
        self.file = open(run / ".lock", "a+")
        if fcntl is None:
            return
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise _locked(run, holder) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.file.flush()

    def release(self) -> None:
        """Let another process write the run (closing the file drops the lock)."""
        self.file.close()

    @staticmethod
    def refuse_if_held(run: Path) -> None:
        """Raise if another process writes ``run`` now; a look that writes nothing (for a command
        that must leave the run as it is when it is refused, such as a resume with bad overrides).

        Raises:
            CheckpointError: held by another process (code ``locked``).
        """
        file = Path(run) / ".lock"
        if fcntl is None or not file.is_file():
            return
        with open(file) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # dropped when the file closes
            except OSError:
                raise _locked(Path(run), f.read().strip() or "another process") from None


def _locked(run: Path, holder: str) -> CheckpointError:
    return CheckpointError(f"{run} is being written by {holder}: one run directory has one writer. Wait for it to "
                           "finish, or train into another --out.", key=str(run), code="locked")


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
        weights: a weight set of the checkpoint (``"ema"``); ``"raw"``: the trained weights; None:
            the EMA when the recipe has an ``ema`` section and the checkpoint its weights (said on
            stderr), else the trained weights.

    Raises:
        CheckpointError: no checkpoint, an unreadable one, or no such weight set.
        RecipeError: the saved recipe does not take the overrides.
    """
    ckpt = checkpoint.latest(Path(path))
    recipe_yaml, state = checkpoint.load_weights(ckpt, weights)
    run = RunDir(ckpt.parent.parent) if ckpt.parent.name == "checkpoints" else None
    recipe = apply_overrides(from_yaml(recipe_yaml), overrides) if overrides else from_yaml(recipe_yaml)
    if weights is None and recipe.get("ema") is not None and "ema" in checkpoint.weight_sets(ckpt):
        weights = "ema"
        state = checkpoint.load_weights(ckpt, weights)[1]
        print(f"unpaired: using the EMA weights of {', '.join(recipe.ema.networks)} ({ckpt / checkpoint.weights_file('ema')}), "
              "as the recipe's ema section asks; --weights raw uses the trained ones.", file=sys.stderr)
    return LoadedRun(ckpt, run, recipe, state, None if weights in (None, "raw") else weights)


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is one checkpoint (rather than a run directory)."""
    return (Path(path) / checkpoint.WEIGHTS).is_file()
