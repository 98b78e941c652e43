"""Loss logging: means over ``train.log_every`` iterations (and ranks) as records, written to
``log.jsonl`` and TensorBoard, and shown on the progress bar. Diagnostics that losses and handlers
report (:func:`unpaired.plugin.diagnostics.report`) are averaged and logged the same way."""

from __future__ import annotations

import json
import time

import torch

from unpaired.errors import CheckpointError
from unpaired.runs.checkpoint import free_space
from unpaired.runtime import distributed
from unpaired.plugin.hookspecs import hookimpl


class LossLog:
    """Sums each term's loss (and each reported diagnostic) on the device (no host sync) and,
    every ``train.log_every`` iterations and before each checkpoint, turns the means into a record
    for ``unpaired_log``."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    @hookimpl(trylast=True)  # after the handlers that report into this iteration's values
    def unpaired_after_step(self, trainer, losses):
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1
        if trainer.iteration % trainer.recipe.train.log_every == 0:
            self.flush(trainer)

    @hookimpl
    def unpaired_before_checkpoint(self, trainer):
        self.flush(trainer)

    def flush(self, trainer) -> None:
        """One host sync (and one all-reduce under torchrun): the means since the last record."""
        if not self.sums:
            return
        keys = sorted(self.sums)
        stacked = torch.stack([self.sums[k] / self.counts[k] for k in keys])
        if trainer.dist.enabled:  # every rank logs at the same iterations, so all reach this
            stacked = distributed.mean_over_ranks(stacked)
        self.sums, self.counts = {}, {}
        record = {"iteration": trainer.iteration, "epoch": trainer.epoch, "time": time.time(),
                  **dict(zip(keys, stacked.tolist())),
                  **{f"lr/{n}": lr for n, lr in trainer.executor.learning_rates().items()}}
        trainer.hook.unpaired_log(trainer=trainer, record=record)


class JsonlLog:
    """Appends each record to ``<run>/log.jsonl`` (one JSON object a line) and keeps it in
    ``trainer.history`` (what ``fit()`` returns)."""

    @hookimpl
    def unpaired_log(self, trainer, record):
        trainer.history.append(record)
        if trainer.is_main:
            try:
                with open(trainer.run.log, "a") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as err:
                raise CheckpointError(f"{trainer.run.log}: cannot append to the log ({err}; "
                                      f"{free_space(trainer.out_dir)}). Free some space, then resume from the last "
                                      "checkpoint.", key=str(trainer.run.log), code="write-failed") from err


class TensorBoardLog:
    """Each record's values as TensorBoard scalars in ``<run>/tb`` (and sample grids as images)."""

    def __init__(self):
        self._writer = None

    def writer(self, trainer):
        """The run's ``SummaryWriter`` (TensorBoard imported on first use: a run without records
        never loads it)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # hides the events a killed session wrote after the checkpoint this one starts from
            self._writer = SummaryWriter(str(trainer.run.tensorboard), purge_step=trainer.session_start + 1)
        return self._writer

    @hookimpl
    def unpaired_log(self, trainer, record):
        if trainer.is_main:
            for k, v in record.items():
                if k not in ("iteration", "epoch", "time"):
                    self.writer(trainer).add_scalar(k, v, record["iteration"])

    @hookimpl
    def unpaired_samples_saved(self, trainer, path, grid):
        self.writer(trainer).add_image("samples", grid, trainer.iteration)

    @hookimpl
    def unpaired_train_end(self, trainer):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def term_losses(record: dict) -> dict[str, float]:
    """A record's term losses (not diagnostics, weights, learning rates or scores) by short name:
    the term's, or ``<step>/<term>`` where two steps have a term of that name (StarGAN v2's ``adv``)."""
    keys = [k for k in record if k.count("/") == 1 and not k.startswith(("lr/", "eval/"))]
    names = [k.split("/")[-1] for k in keys]
    return {name if names.count(name) == 1 else key: record[key] for key, name in zip(keys, names)}


class ProgressPostfix:
    """The latest loss means on the progress bar (the terms' losses, not their diagnostics)."""

    @hookimpl
    def unpaired_log(self, trainer, record):
        if trainer.bar is not None:
            trainer.bar.set_postfix({k: f"{v:.3f}" for k, v in term_losses(record).items()}, refresh=False)
