"""The component registry: what exists, who provided it, and the one way to build it.

Built on pluggy (see :mod:`unpaired.hookspecs`). ``create(kind, name, **args)`` is the single
construction path; ``names(kind)`` makes names discoverable, as ``timm.create_model`` and
``timm.list_models`` do for models.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pluggy

from unpaired.plugin import hookspecs
from unpaired.errors import RecipeError, UnpairedError

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
            RecipeError: the module cannot be found or fails to import, a hook implementation does
                not match its specification (or names no known hook), or a component is malformed;
                the message names the plugin.
        """
        if isinstance(plugin, str):
            plugin = _import(plugin, [str(p) for p in search_path])
        if self.pm.is_registered(plugin):
            return
        label = getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as err:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            known = [n for n in dir(hookspecs) if n.startswith("unpaired_")]
            hint = "".join(closest(h, known) for h in re.findall(r"unknown hook '(\w+)'", str(err)))
            reason = " ".join(str(err).split()).rstrip(".")
            raise RecipeError(f"plugin {label}: {reason}.{hint} Hooks: {', '.join(known)}.") from err
        self._collect()

    def for_recipe(self, recipe) -> "Registry":
        """This registry plus the recipe's ``plugins:`` modules, in a copy: a recipe's plugins serve
        its own runs only, never the next recipe's in the same process.

        Raises:
            RecipeError: a plugin module cannot be imported or registered.
        """
        if not recipe.plugins:
            return self
        reg = Registry(entry_points=False)
        for plugin in self.pm.get_plugins():
            reg.pm.register(plugin, name=self.pm.get_name(plugin))
        reg._components = dict(self._components)  # with their providers' names
        for module in recipe.plugins:
            reg.register_plugin(module, search_path=recipe.plugin_dirs)
        return reg

    def _provider(self, plugin) -> str:
        for plug, dist in self.pm.list_plugin_distinfo():
            if plug is plugin:
                return f"{dist.project_name} {dist.version} ({self.pm.get_name(plugin)})"
        return getattr(plugin, "__name__", None) or type(plugin).__name__

    def _collect(self) -> None:
        for impl in self.pm.hook.unpaired_components.get_hookimpls():
            provider = self._provider(impl.plugin)
            for comp in impl.function() or ():
                if not isinstance(comp, Component):
                    raise RecipeError(f"plugin {provider}: unpaired_components returned {comp!r}; it returns "
                                      "a list of unpaired.Component(kind, name, factory).")
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
            RecipeError: one line: unknown name, an argument the factory does not take, a required
                argument missing (the call's own ``TypeError``), or a value it rejects (a
                ``ValueError``, or an ``OSError`` for a file it cannot read).
            Exception: anything else the factory raises (``TypeError`` from inside it, ``NameError``,
                ``ZeroDivisionError``...) is a bug in the plugin's code, or a value of a kind its
                code cannot take: it propagates with its traceback and a note naming the plugin,
                its provider and the recipe key.
        """
        comp = self.get(kind, name, where)
        at = where or f"{kind} {name}"
        check_args(comp.factory, args, f"{at}.args")
        try:
            return comp.factory(**args)
        except Exception as err:
            binding = isinstance(err, TypeError) and err.__traceback__.tb_next is None  # the factory never ran
            if binding or isinstance(err, (ValueError, OSError)):
                raise RecipeError(f"{at}: {err}") from err
            if not isinstance(err, UnpairedError):
                err.add_note(f"{at}: raised inside {kind} plugin '{name}' ({comp.provider}); the traceback shows "
                             f"where. Unless a value in {at}.args is of a kind the plugin cannot take, this is a "
                             "bug in the plugin.")
            raise


def _import(module: str, search_path: list[str]):
    """Import ``module``, from a file in ``search_path`` first (fresh, if another recipe's folder
    gave a module of that name already), else from ``sys.path``."""
    for folder in search_path:
        file = Path(folder) / f"{module.replace('.', '/')}.py"
        if file.is_file():
            loaded = sys.modules.get(module)
            if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == file.resolve():
                return loaded
            spec = importlib.util.spec_from_file_location(module, file)
            plugin = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(plugin)
            except Exception as err:
                raise _import_failed(module, file, err) from err
            sys.modules[module] = plugin
            return plugin
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            where = f" (looked in {', '.join(search_path)} and on sys.path)" if search_path else ""
            raise RecipeError(
                f"plugins: cannot find plugin module '{module}'{where}. Install the package, put "
                f"{module}.py beside the recipe, or add its folder to PYTHONPATH."
            ) from err
        raise _import_failed(module, None, err) from err
    except Exception as err:
        raise _import_failed(module, None, err) from err


def _import_failed(module: str, file: Path | None, err: Exception) -> RecipeError:
    """The plugin module was found but raised while importing: say where, as a traceback would."""
    tb = traceback.extract_tb(err.__traceback__)
    line = f"{err.filename}:{err.lineno}" if isinstance(err, SyntaxError) else (
        f"{tb[-1].filename}:{tb[-1].lineno}" if tb else str(file or module))
    return RecipeError(f"plugins: importing plugin module '{module}' failed at {line}: {type(err).__name__}: {err}")


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
                f"Accepted: {', '.join(accepted) or '(none)'}. (If a base recipe set it for another type, drop it with {where}.{key}=null.)"
            )
        expected = _type_problem(params[key].default, value, params[key].annotation)
        if expected:
            raise RecipeError(f"{where}.{key}: expected {expected}, got {value!r}.")


def _type_problem(default, value, annotation=None) -> str:
    """What ``value`` should have been, judged by the default's type: numbers, flags, and text
    where the parameter is annotated ``str`` only (a path, a name)."""
    if annotation in (str, "str") and value is not None and not isinstance(value, str):
        return "text (a path or a name; quote it)"
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
