"""Sample grids every ``train.sample_every`` iterations and at the end of training."""

from __future__ import annotations

from unpaired.domains import SECOND_SAMPLES
from unpaired.errors import DataError, warn
from unpaired.inference.grid import fixed_inputs, save_grid
from unpaired.plugin.hookspecs import hookimpl


class SampleGrids:
    """Writes ``<run>/samples/iter_XXXXXXXX.png``: one row per image of the recipe's ``samples``,
    one column per fixed test image. The images are read once, when the trainer is built, so a
    missing or broken test split shows before training rather than at the first grid."""

    def __init__(self, trainer):
        self.inputs = {k: v.to(trainer.device) for k, v in fixed_inputs(trainer.data, 8).items()}
        for name in SECOND_SAMPLES:  # with data.second_sample: the same images in another order
            if name in trainer.executor.graph.data:
                self.inputs[name] = self.inputs[name[:-1]].roll(1, 0)

    def save(self, trainer):
        path = trainer.run.sample(trainer.iteration)
        ex = trainer.executor
        try:
            grid = save_grid(trainer.recipe, ex.graph, trainer.inference_nets(), self.inputs, path)
        except DataError as err:
            if err.code != "write-failed":
                raise
            # a picture is not worth the run: a full disk stops training at the next checkpoint, which says so
            warn(f"no sample grid at iteration {trainer.iteration}: {err}")
            return None
        trainer.hook.unpaired_samples_saved(trainer=trainer, path=path, grid=grid)
        return path

    @hookimpl
    def unpaired_after_step(self, trainer):
        if trainer.iteration % trainer.recipe.train.sample_every == 0:
            self.save(trainer)

    @hookimpl
    def unpaired_train_end(self, trainer, result):
        if result.error is None:
            self.save(trainer)
