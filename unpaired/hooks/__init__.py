"""Built-in handlers of the training events (:mod:`unpaired.hookspecs`), and the event relay.

Logging, sample grids and the checkpoint cadence are ordinary pluggy hook implementations, the
same as a plugin's: a plugin adds its own (an EMA of a generator, a metric, another logger) by
implementing the events, through the ``unpaired`` entry points or ``Trainer(..., hooks=[obj])``.
"""

from __future__ import annotations

import pluggy

from .. import hookspecs
from ..registry import Registry
from .checkpoints import CheckpointCadence
from .evaluation import Evaluation
from .logs import JsonlLog, LossLog, ProgressPostfix, TensorBoardLog
from .run import Report, RunInfo
from .samples import SampleGrids

__all__ = ["CheckpointCadence", "Evaluation", "JsonlLog", "LossLog", "ProgressPostfix", "Report", "RunInfo",
           "SampleGrids", "TensorBoardLog", "event_relay"]


def event_relay(registry: Registry, handlers) -> pluggy.HookRelay:
    """The events of one training run: ``handlers`` (objects with ``@hookimpl`` methods) plus every
    plugin of ``registry`` (entry points and run-time plugins). Per run, so that two trainers in one
    process never see each other's handlers."""
    pm = pluggy.PluginManager("unpaired")
    pm.add_hookspecs(hookspecs)
    for plugin in registry.pm.get_plugins():
        pm.register(plugin, name=registry.pm.get_name(plugin))
    for handler in handlers:
        pm.register(handler)
    return pm.hook
