"""Run directories: the layout and load chain (:mod:`~unpaired.runs.rundir`), the one checkpoint
writer and its safe loaders (:mod:`~unpaired.runs.checkpoint`), ``init_from`` and imported
reference models."""
