"""When checkpoints are written: every ``train.checkpoint_every`` iterations and after each epoch."""

from __future__ import annotations

from unpaired.plugin.hookspecs import hookimpl


class CheckpointCadence:
    """Saves every ``train.checkpoint_every`` iterations and at each epoch's end (an epoch's last
    iteration is saved once the epoch has ended, so the checkpoint holds the stepped schedules)."""

    @hookimpl
    def unpaired_after_step(self, trainer):
        if trainer.step % trainer.recipe.train.checkpoint_every == 0 and not trainer.epoch_complete:
            trainer.save_checkpoint()

    @hookimpl
    def unpaired_epoch_end(self, trainer):
        trainer.save_checkpoint()
