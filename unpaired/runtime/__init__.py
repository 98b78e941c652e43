"""Where a run computes: devices and precision (:mod:`~unpaired.runtime.device`, a leaf module) and
data parallelism under ``torchrun`` (:mod:`~unpaired.runtime.distributed`)."""
