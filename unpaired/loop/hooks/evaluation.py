"""Evaluation during training: the recipe's eval section every ``train.eval_every`` epochs and at
the end, and ``checkpoints/best`` kept by the metric ``eval.best`` names."""

from __future__ import annotations

import json
import math

from tqdm import tqdm

from unpaired.evaluation.evaluator import Evaluator
from unpaired.evaluation.result import EvalResult
from unpaired.plugin.hookspecs import hookimpl
from unpaired.runs import checkpoint
from unpaired.runs.rundir import BEST, BEST_FILE
from unpaired.runtime import distributed


class Evaluation:
    """Scores the networks with :class:`unpaired.evaluation.evaluator.Evaluator` (built with the
    trainer, so a bad eval section or a missing weights file fails before training) on a fixed
    test subset.

    Every rank evaluates the same images; rank 0's scores decide whether the evaluation is the best
    so far. The last evaluation of a finished run goes to ``eval/<checkpoint>/metrics.json``; with
    ``eval.best``, an evaluation that beats every earlier one (the direction from the metric's
    ``better``) is saved as ``checkpoints/best`` by the trainer's one checkpoint writer (every
    rank's image pools, the handlers' states), with its scores in ``checkpoints/best/eval.json``. A
    resumed run reads that file, so "best" stays best over the whole run.
    """

    def __init__(self, trainer):
        self.evaluator = Evaluator(trainer.recipe, trainer.device, data=trainer.data)
        self.best_name = trainer.recipe.eval.best
        self.best_value = self._saved_best(trainer)
        self.last: tuple[int, EvalResult] | None = None

    def _saved_best(self, trainer) -> float | None:
        try:
            saved = json.loads((trainer.run.best / BEST_FILE).read_text())
        except (OSError, ValueError):
            return None
        return saved["value"] if saved.get("metric") == self.best_name else None

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        key = self.best_name.split("/")[-1]
        return value < self.best_value if self.evaluator.better[key] == "min" else value > self.best_value

    @hookimpl
    def unpaired_evaluate(self, trainer):
        about = {"iteration": trainer.iteration, "epoch": trainer.epoch}
        if trainer.ema is not None:  # the averaged generators stand in for the trained ones (protocol: which)
            about["weights"] = "ema"
        result = self.evaluator(trainer.inference_nets(), about)
        self.last = trainer.iteration, result
        flat = result.flat()
        shown = ", ".join(f"{k} {flat[k]:.4g}" for k in _headline(flat))
        if self.best_name is not None:
            try:
                value = result.value(self.best_name)
            except KeyError:  # the metric could not run this time (see the result's skipped)
                value = float("nan")
            improved = self._improves(value)
            if trainer.dist.enabled:  # one decision for every rank: the checkpoint is written by all
                improved, value = distributed.broadcast_object((improved, value))
            shown = f"{self.best_name} {value:.4g}" + (" (new best: checkpoints/best)" if improved else "") + "; " + shown
            if improved:
                self.best_value = value
                record = {"metric": self.best_name, "value": value, "iteration": trainer.iteration,
                          "epoch": trainer.epoch, **result.to_json()}
                trainer.save_checkpoint(BEST, extra={BEST_FILE: json.dumps(record, indent=2) + "\n"})
        if trainer.is_main:
            tqdm.write(f"evaluation at {trainer.epoch_label}, iteration {trainer.iteration}: {shown}")
        return flat

    @hookimpl
    def unpaired_train_end(self, trainer, result):
        if trainer.is_main and result.error is None and self.last is not None and self.last[0] == trainer.iteration:
            scores, name = self.last[1], checkpoint.iteration_name(trainer.iteration)
            scores.protocol["checkpoint"] = str(trainer.run.checkpoints / name)
            scores.write(trainer.run.evaluation(name))


def _headline(flat: dict, per_direction: int = 2, most: int = 8) -> list[str]:
    """The keys the console line shows: the first ``per_direction`` scores of each direction (both
    ways of a two-domain run, not only the first), ``most`` in all."""
    by_direction: dict[str, list[str]] = {}
    for key in flat:
        by_direction.setdefault(key.rsplit("/", 1)[0], []).append(key)
    return [k for keys in by_direction.values() for k in keys[:per_direction]][:most]
