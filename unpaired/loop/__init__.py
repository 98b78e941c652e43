"""The loop: :class:`~unpaired.loop.trainer.Trainer` runs epochs of iterations, resumes, handles
signals and fires the training events that :mod:`unpaired.loop.hooks` and plugins handle."""
