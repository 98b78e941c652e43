"""Built-in handlers of the training events (:mod:`unpaired.hookspecs`), and the event relay.

Logging, sample grids and the checkpoint cadence are ordinary pluggy hook implementations, the
same as a plugin's: a plugin adds its own (an EMA of a generator, a metric, another logger) by
implementing the events, through the ``unpaired`` entry points or ``Trainer(..., hooks=[obj])``.
"""

from __future__ import annotations

from types import ModuleType

import pluggy

from unpaired.plugin import hookspecs
from unpaired.plugin.registry import Registry
from unpaired.loop.timing import LoopTimer
from unpaired.loop.hooks.checkpoints import CheckpointCadence
from unpaired.loop.hooks.evaluation import Evaluation
from unpaired.loop.hooks.logs import JsonlLog, LossLog, ProgressPostfix, TensorBoardLog
from unpaired.loop.hooks.run import Report, RunInfo
from unpaired.loop.hooks.samples import SampleGrids

__all__ = ["CheckpointCadence", "Evaluation", "JsonlLog", "LossLog", "ProgressPostfix", "Report", "RunInfo",
           "SampleGrids", "TensorBoardLog", "event_relay"]


def event_relay(registry: Registry, handlers, timer: LoopTimer | None = None) -> pluggy.HookRelay:
    """The events of one training run: ``handlers`` (objects with ``@hookimpl`` methods) plus every
    plugin of ``registry`` (entry points and run-time plugins). Per run, so that two trainers in one
    process never see each other's handlers. With ``timer``, each handler's time is charged to
    ``"<event>: <handler>"`` (e.g. ``after_step: SampleGrids``)."""
    pm = pluggy.PluginManager("unpaired")
    pm.add_hookspecs(hookspecs)
    for plugin in registry.pm.get_plugins():
        pm.register(plugin, name=registry.pm.get_name(plugin))
    for handler in handlers:
        pm.register(handler)
    if timer is not None:
        for caller in vars(pm.hook).values():
            event = caller.name.removeprefix("unpaired_")
            for impl in caller.get_hookimpls():
                if not (impl.wrapper or impl.hookwrapper):  # a wrapper's call only creates its generator
                    impl.function = timer.wrap(impl.function, f"{event}: {_label(impl)}")
    return pm.hook


def _label(impl: pluggy.HookImpl) -> str:
    """A handler's name: its plugin's name (a module), the class registered, or the object's class
    (built-in handlers, ``hooks=[obj]``)."""
    if isinstance(impl.plugin, ModuleType):
        return impl.plugin_name
    return impl.plugin.__name__ if isinstance(impl.plugin, type) else type(impl.plugin).__name__
