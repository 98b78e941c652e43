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


from unpaired.runs import checkpoint



LOG = "log.jsonl"


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
