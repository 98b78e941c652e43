"""Built-in handlers of the training events (:mod:`unpaired.plugin.hookspecs`), and the events of a run.

Logging, sample grids, evaluation and the run's record are ordinary pluggy hook implementations,
the same as a plugin's: a plugin adds its own (an EMA of a generator, a metric, another logger) by
implementing the events, through the ``unpaired`` entry points, a recipe's ``handlers:`` or
``Trainer(..., hooks=[obj])``.
"""

from __future__ import annotations

from types import ModuleType

import pluggy

from unpaired.errors import RecipeError
from unpaired.loop.hooks.evaluation import Evaluation
from unpaired.loop.hooks.logs import JsonlLog, LossLog, ProgressPostfix, TensorBoardLog
from unpaired.loop.hooks.run import Report, RunInfo
from unpaired.loop.hooks.samples import SampleGrids
from unpaired.loop.timing import LoopTimer
from unpaired.plugin import hookspecs
from unpaired.plugin.registry import Registry

__all__ = ["Evaluation", "Events", "JsonlLog", "LossLog", "ProgressPostfix", "Report", "RunInfo", "SampleGrids",
           "TensorBoardLog"]

#: The hooks through which handlers keep state.
STATE_HOOKS = ("unpaired_state_dict", "unpaired_load_state_dict", "unpaired_weight_sets")


class Events:
    """The events of one training run and the handlers that receive them.

    Per run, so that two trainers in one process never see each other's handlers: the handlers
    given (built-in, a recipe's ``handlers:``, ``Trainer(hooks=...)``) plus every plugin of the
    registry (entry points and a recipe's ``plugins:``).

    Args:
        registry: its plugins receive the events too.
        handlers: objects with ``@hookimpl`` methods.
        named: handlers keyed by a name of their own (a recipe's ``handlers:`` entries).
        timer: charges each handler's time to ``"<event>: <handler>"`` (e.g. ``after_step: SampleGrids``).

    Attributes:
        hook: pluggy's relay: ``events.hook.unpaired_after_step(trainer=..., losses=...)``.

    Raises:
        RecipeError: two handlers that keep state have the same key (set ``state_key`` on one).
    """

    def __init__(self, registry: Registry, handlers=(), named: dict | None = None, timer: LoopTimer | None = None):
        self.pm = pluggy.PluginManager("unpaired")
        self.pm.add_hookspecs(hookspecs)
        for plugin in registry.pm.get_plugins():
            self.pm.register(plugin, name=registry.pm.get_name(plugin))
        self._names = {id(h): name for name, h in (named or {}).items()}
        for handler in [*handlers, *(named or {}).values()]:
            self.pm.register(handler)
        self.hook = self.pm.hook
        self._check_keys()
        if timer is not None:
            for caller in vars(self.pm.hook).values():
                event = caller.name.removeprefix("unpaired_")
                for impl in caller.get_hookimpls():
                    if not (impl.wrapper or impl.hookwrapper):  # a wrapper's call only creates its generator
                        impl.function = timer.wrap(impl.function, f"{event}: {_label(impl)}")

    def key(self, plugin) -> str:
        """The key of a handler's state: its recipe entry's name, its ``state_key``, or the name
        of its module or class."""
        if id(plugin) in self._names:
            return self._names[id(plugin)]
        return getattr(plugin, "state_key", None) or _label_of(plugin)

    def _check_keys(self) -> None:
        seen: dict[str, object] = {}
        for hook in STATE_HOOKS:
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                key = self.key(impl.plugin)
                if seen.setdefault(key, impl.plugin) is not impl.plugin:
                    raise RecipeError(f"two handlers keep state under the key '{key}'; give one a state_key attribute "
                                      "(or another name in the recipe's handlers).", key=key, code="state-key")

    def _call_each(self, hook: str, **kwargs) -> dict[str, object]:
        """Each implementation of ``hook`` called on its own: {handler key: result}."""
        out = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            result = impl.function(**{a: kwargs[a] for a in impl.argnames})
            if result is not None:
                out[self.key(impl.plugin)] = result
        return out

    def state_dicts(self, trainer) -> dict[str, object]:
        """Every handler's state for a checkpoint: {key: state}."""
        return self._call_each("unpaired_state_dict", trainer=trainer)

    def load_state_dicts(self, trainer, states: dict[str, object]) -> None:
        """Give each handler its state back (handlers without a saved state are not called)."""
        for impl in self.pm.hook.unpaired_load_state_dict.get_hookimpls():
            key = self.key(impl.plugin)
            if key in states:
                impl.function(**{a: {"trainer": trainer, "state": states[key]}[a] for a in impl.argnames})

    def weight_sets(self, trainer) -> dict[str, dict]:
        """The networks handlers offer to inference: {key: {network: module}}."""
        return self._call_each("unpaired_weight_sets", trainer=trainer)


def _label_of(plugin) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return plugin.__name__ if isinstance(plugin, type) else type(plugin).__name__


def _label(impl: pluggy.HookImpl) -> str:
    """A handler's name: its plugin's name (a module), the class registered, or the object's class
    (built-in handlers, ``hooks=[obj]``)."""
    if isinstance(impl.plugin, ModuleType):
        return impl.plugin_name
    return _label_of(impl.plugin)
