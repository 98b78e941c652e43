"""The component registry: what exists, who provided it, and the one way to build it.

Built on pluggy (see :mod:`unpaired.hookspecs`). ``create(kind, name, **args)`` is the single
construction path; ``names(kind)`` makes names discoverable, as ``timm.create_model`` and
``timm.list_models`` do for models.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import RecipeError

ENTRY_POINT_GROUP = "unpaired"


@dataclass(frozen=True)
class Component:
    """One registered part.

    Args:
        kind: one of :data:`unpaired.hookspecs.KINDS` (``"generator"``, ``"consistency_loss"``, ...).
        name: the name recipes use, e.g. ``"resnet_9blocks"``.
        factory: class or function; its keyword arguments are the recipe's ``args``.
        description: one line for ``unpaired plugins``; defaults to the factory's first doc line.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    provider: str = field(default="", compare=False)

    @property
    def summary(self) -> str:
        doc = self.description or inspect.getdoc(self.factory) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


def closest(name: str, known) -> str:
    """A " Did you mean 'x'?" hint for ``name`` among ``known``, or an empty string."""
    match = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


class Registry:
    """Every component that every registered plugin provides.

    Args:
        entry_points: load plugins from the ``unpaired`` entry-point group (the built-ins too).

    Raises:
        RecipeError: two plugins register the same kind and name, or a component has an
            unknown kind.
    """

    def __init__(self, entry_points: bool = True):
        self.pm = pluggy.PluginManager("unpaired")
        self.pm.add_hookspecs(hookspecs)
        self._components: dict[tuple[str, str], Component] = {}
        if entry_points:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            self._collect()

    # -- plugins ---------------------------------------------------------------------------------
    def register_plugin(self, plugin, name: str | None = None, search_path=()) -> None:
        """Register a plugin object or module (or an importable module path) at run time.

        ``search_path``: folders to import a module path from, before ``sys.path`` (a recipe's
        ``plugins:`` are imported from the recipe file's own folder).

        Raises:
            RecipeError: the module cannot be imported (the message says why and where it looked).
        """
        if isinstance(plugin, str):
            plugin = _import(plugin, [str(p) for p in search_path])
        if self.pm.is_registered(plugin):
            return
        self.pm.register(plugin, name=name)
        self._collect()

    def _provider(self, plugin) -> str:
        for plug, dist in self.pm.list_plugin_distinfo():
            if plug is plugin:
                return f"{dist.project_name} {dist.version} ({self.pm.get_name(plugin)})"
        return getattr(plugin, "__name__", None) or self.pm.get_name(plugin)

    def _collect(self) -> None:
        for impl in self.pm.hook.unpaired_components.get_hookimpls():
            provider = self._provider(impl.plugin)
            for comp in impl.function() or ():
                if comp.kind not in hookspecs.KINDS:
                    raise RecipeError(
                        f"plugin {provider} registers '{comp.name}' under unknown kind "
                        f"'{comp.kind}'; known kinds: {', '.join(hookspecs.KINDS)}."
                    )
                key = (comp.kind, comp.name)
                old = self._components.get(key)
                if old is not None and old.factory is comp.factory:
                    continue
                if old is not None:
                    raise RecipeError(
                        f"{comp.kind} '{comp.name}' is registered twice: by {old.provider} and by "
                        f"{provider}. Uninstall one of them or rename the component."
                    )
                self._components[key] = Component(
                    comp.kind, comp.name, comp.factory, comp.description, provider
                )

    # -- look-up ---------------------------------------------------------------------------------
    def names(self, kind: str, pattern: str = "*") -> list[str]:
        """Sorted names of ``kind`` matching the glob ``pattern``."""
        return sorted(n for k, n in self._components if k == kind and fnmatch.fnmatch(n, pattern))

    def components(self) -> list[Component]:
        return sorted(self._components.values(), key=lambda c: (c.kind, c.name))

    def get(self, kind: str, name: str, where: str = "") -> Component:
        """The component ``name`` of ``kind``.

        Raises:
            RecipeError: unknown kind, or unknown name (lists the known names and the closest).
        """
        if kind not in hookspecs.KINDS:
            raise RecipeError(f"unknown component kind '{kind}'.{closest(kind, hookspecs.KINDS)}")
        comp = self._components.get((kind, str(name)))
        if comp is None:
            at = f"{where}: " if where else ""
            raise RecipeError(
                f"{at}unknown {kind} '{name}'.{closest(name, self.names(kind))} "
                f"Known {kind} names: {', '.join(self.names(kind)) or '(none)'}."
            )
        return comp

    def create(self, kind: str, name: str, where: str = "", **args) -> Any:
        """Build component ``name`` of ``kind`` with keyword ``args``.

        ``where`` is the recipe key path used in error messages.

        Raises:
            RecipeError: unknown name, an argument the factory does not take, or one it rejects.
        """
        comp = self.get(kind, name, where)
        check_args(comp.factory, args, f"{where or kind + ' ' + name}.args")
        try:
            return comp.factory(**args)
        except (TypeError, ValueError) as err:
            raise RecipeError(f"{where or kind + ' ' + name}: {err}") from err


def _import(module: str, search_path: list[str]):
    added = [p for p in search_path if p not in sys.path]
    sys.path[:0] = added
    try:
        return importlib.import_module(module)
    except ImportError as err:
        where = f" (looked in {', '.join(search_path)} and on sys.path)" if search_path else ""
        raise RecipeError(
            f"plugins: cannot import plugin module '{module}'{where}: {err}. "
            "Install the package, put the module beside the recipe, or add its folder to PYTHONPATH."
        ) from err
    finally:
        for p in added:
            sys.path.remove(p)


def check_args(factory: Callable, args: dict, where: str) -> None:
    """Fail with the key path when ``args`` has a name ``factory`` does not accept, or a value
    of the wrong kind where the default is a number or a flag."""
    params = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in args.items():
        if key not in accepted:
            raise RecipeError(
                f"{where}.{key}: unknown argument.{closest(key, accepted)} "
                f"Accepted: {', '.join(accepted) or '(none)'}."
            )
        expected = _type_problem(params[key].default, value)
        if expected:
            raise RecipeError(f"{where}.{key}: expected {expected}, got {value!r}.")


def _type_problem(default, value) -> str:
    """What ``value`` should have been, judged by the default's type (numbers and flags only)."""
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "true or false"
    if isinstance(default, (int, float)) and isinstance(value, (str, bool)):
        return "a number"
    if isinstance(default, int) and isinstance(value, float) and not value.is_integer():
        return "an integer"
    return ""


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def create(kind: str, name: str, **args) -> Any:
    """Build a component from the default registry: ``create("generator", "resnet_9blocks")``."""
    return default_registry().create(kind, name, **args)


def list_components(kind: str, pattern: str = "*") -> list[str]:
    """Names of ``kind`` in the default registry matching a glob, e.g. ``("generator", "unet*")``."""
    return default_registry().names(kind, pattern)
