"""The component registry: what exists, who provided it, and the one way to build it.

Built on pluggy (see :mod:`unpaired.plugin.hookspecs`). ``build(spec)`` is the single
construction path, as mmengine's ``Registry.build(cfg)`` and timm's ``create_model``:
a :class:`Spec` is what a recipe entry names (kind, plugin name, args, recipe key).
``names(kind)`` makes names discoverable, as ``timm.list_models`` does. A component may keep old
names as ``aliases`` (timm's ``register_model_deprecations``), so that runs saved under an old
name still load; a plugin package may add kinds of its own (``unpaired_component_kinds``).
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
from types import MappingProxyType
from typing import Any, Callable, Mapping

import pluggy

from unpaired.errors import Problem, RecipeError, UnpairedError, warn
from unpaired.plugin import hookspecs

ENTRY_POINT_GROUP = "unpaired"


@dataclass(frozen=True)
class Component:
    """One registered part.

    Args:
        kind: one of the registry's kinds (:data:`unpaired.plugin.hookspecs.KINDS`, and those
            plugins add), e.g. ``"generator"``, ``"consistency_loss"``.
        name: the name recipes use, e.g. ``"resnet_9blocks"``.
        factory: class or function; its keyword arguments are the recipe's ``args``.
        description: one line for ``unpaired plugins``; defaults to the factory's first doc line.
        aliases: earlier names of the component, still accepted (a warning names the new one).
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    provider: str = field(default="", compare=False)
    aliases: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        doc = self.description or inspect.getdoc(self.factory) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


@dataclass(frozen=True)
class Spec:
    """A component as a recipe entry names it.

    Args:
        kind: the component kind (``generator``, ``optimizer``, ...).
        type: the plugin name (``resnet_9blocks``, ``adam``).
        args: keyword arguments for its factory (plain values; ``null`` ones already dropped).
        where: the recipe key of the entry (``networks.G_AB``), named in errors.
    """

    kind: str
    type: str
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    where: str = ""


def closest(name: str, known) -> str:
    """A " Did you mean 'x'?" hint for ``name`` among ``known``, or an empty string."""
    match = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


class Registry:
    """Every component that every registered plugin provides.

    Two plugins that provide the same kind and name do not stop the registry: the name is
    marked as clashing, and only a recipe that uses it fails (naming both providers), so that an
    installed package's clash never breaks the recipes that do not need it.

    Args:
        entry_points: load plugins from the ``unpaired`` entry-point group (the built-ins too).

    Raises:
        RecipeError: a component of a kind no plugin declares, or a malformed ``unpaired_components``.
    """

    def __init__(self, entry_points: bool = True):
        self.pm = pluggy.PluginManager("unpaired")
        self.pm.add_hookspecs(hookspecs)
        self.kinds: dict[str, str] = dict(hookspecs.KINDS)
        self._components: dict[tuple[str, str], Component] = {}
        self._aliases: dict[tuple[str, str], str] = {}
        self._clashes: dict[tuple[str, str], list[str]] = {}
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
            raise RecipeError(f"plugin {label}: {reason}.{hint} Hooks: {', '.join(known)}.", key=label,
                              code="bad-hook") from err
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
        reg.kinds, reg._components = dict(self.kinds), dict(self._components)  # with their providers' names
        reg._aliases, reg._clashes = dict(self._aliases), {k: list(v) for k, v in self._clashes.items()}
        for module in recipe.plugins:
            reg.register_plugin(module, search_path=recipe.plugin_dirs)
        return reg

    def _provider(self, plugin) -> str:
        for plug, dist in self.pm.list_plugin_distinfo():
            if plug is plugin:
                return f"{dist.project_name} {dist.version} ({self.pm.get_name(plugin)})"
        return getattr(plugin, "__name__", None) or type(plugin).__name__

    def _collect(self) -> None:
        for impl in self.pm.hook.unpaired_component_kinds.get_hookimpls():
            for kind, description in (impl.function() or {}).items():
                self.kinds.setdefault(str(kind), str(description))
        for impl in self.pm.hook.unpaired_components.get_hookimpls():
            provider = self._provider(impl.plugin)
            for comp in impl.function() or ():
                if not isinstance(comp, Component):
                    raise RecipeError(f"plugin {provider}: unpaired_components returned {comp!r}; it returns "
                                      "a list of unpaired.Component(kind, name, factory).", key=provider,
                                      code="bad-component")
                if comp.kind not in self.kinds:
                    raise RecipeError(
                        f"plugin {provider} registers '{comp.name}' under unknown kind '{comp.kind}'; known kinds: "
                        f"{', '.join(self.kinds)} (a plugin adds one with the unpaired_component_kinds hook).",
                        key=provider, code="unknown-kind")
                key = (comp.kind, comp.name)
                old = self._components.get(key)
                if old is not None and old.factory is comp.factory:
                    continue
                if old is not None:  # only a recipe that uses the name fails (see get)
                    clash = self._clashes.setdefault(key, [old.provider])
                    if provider not in clash:
                        clash.append(provider)
                    continue
                self._components[key] = Component(comp.kind, comp.name, comp.factory, comp.description, provider,
                                                  tuple(comp.aliases))
                for alias in comp.aliases:
                    self._aliases[(comp.kind, alias)] = comp.name

    # -- look-up ---------------------------------------------------------------------------------
    def names(self, kind: str, pattern: str = "*") -> list[str]:
        """Sorted names of ``kind`` matching the glob ``pattern``."""
        return sorted(n for k, n in self._components if k == kind and fnmatch.fnmatch(n, pattern))

    def current_name(self, kind: str, name: str) -> str | None:
        """The name ``name`` of ``kind`` goes by now (itself, or the component an alias names), or
        None when nothing of that name is installed; no warning."""
        name = self._aliases.get((kind, str(name)), str(name))
        return name if (kind, name) in self._components else None

    def components(self) -> list[Component]:
        return sorted(self._components.values(), key=lambda c: (c.kind, c.name))

    def clashes(self) -> dict[tuple[str, str], list[str]]:
        """(kind, name) -> the providers of each name that more than one plugin registers."""
        return {k: list(v) for k, v in self._clashes.items()}

    def get(self, kind: str, name: str, where: str = "") -> Component:
        """The component ``name`` of ``kind`` (an alias gives the component it names now, with a warning).

        Raises:
            RecipeError: unknown kind, unknown name (lists the known names and the closest), or a
                name that two plugins register (names both).
        """
        if kind not in self.kinds:
            raise RecipeError(f"unknown component kind '{kind}'.{closest(kind, self.kinds)}", key=where or kind,
                              code="unknown-kind")
        name = str(name)
        if (kind, name) in self._aliases:
            new = self._aliases[(kind, name)]
            warn(f"{where + ': ' if where else ''}{kind} '{name}' is now called '{new}'; the old name still works.")
            name = new
        at = f"{where}: " if where else ""
        if (kind, name) in self._clashes:
            providers = self._clashes[(kind, name)]
            raise RecipeError(f"{at}{kind} '{name}' is registered twice: by {' and by '.join(providers)}. Uninstall "
                              "one of them or rename the component.", key=where or name, code="clash")
        comp = self._components.get((kind, name))
        if comp is None:
            raise RecipeError(
                f"{at}unknown {kind} '{name}'.{closest(name, self.names(kind))} "
                f"Known {kind} names: {', '.join(self.names(kind)) or '(none)'}.", key=where or name,
                code="unknown-plugin"
            )
        return comp

    def create(self, kind: str, name: str, where: str = "", **args) -> Any:
        """Build component ``name`` of ``kind`` with keyword ``args`` (:meth:`build` with a spec).

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
                raise RecipeError(f"{at}: {err}", key=at, code="rejected") from err
            if not isinstance(err, UnpairedError):
                err.add_note(f"{at}: raised inside {kind} plugin '{name}' ({comp.provider}); the traceback shows "
                             f"where. Unless a value in {at}.args is of a kind the plugin cannot take, this is a "
                             "bug in the plugin.")
            raise

    def build(self, spec: Spec, **injected) -> Any:
        """The component a :class:`Spec` names, built with its args and the ``injected`` ones
        (what the trainer supplies: an optimizer's ``params``, a loss's ``network``).

        Raises:
            RecipeError, Exception: as :meth:`create`.
        """
        return self.create(spec.kind, spec.type, spec.where, **spec.args, **injected)


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
                f"{module}.py beside the recipe, or add its folder to PYTHONPATH.", key="plugins", code="no-module"
            ) from err
        raise _import_failed(module, None, err) from err
    except Exception as err:
        raise _import_failed(module, None, err) from err


def _import_failed(module: str, file: Path | None, err: Exception) -> RecipeError:
    """The plugin module was found but raised while importing: say where, as a traceback would."""
    tb = traceback.extract_tb(err.__traceback__)
    line = f"{err.filename}:{err.lineno}" if isinstance(err, SyntaxError) else (
        f"{tb[-1].filename}:{tb[-1].lineno}" if tb else str(file or module))
    return RecipeError(f"plugins: importing plugin module '{module}' failed at {line}: {type(err).__name__}: {err}",
                       key="plugins", code="import-failed")


def check_args(factory: Callable, args: dict, where: str) -> None:
    """Fail with the key path when ``args`` has a name ``factory`` does not accept, or a value
    of the wrong kind where the default is a number or a flag; every such argument at once (its
    ``problems``), so that a recipe switched to another plugin type is mended in one go."""
    params = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    problems = []
    for key, value in args.items():
        if key not in accepted:
            problems.append(Problem(
                f"{where}.{key}", "unknown-argument", f"unknown argument.{closest(key, accepted)} "
                f"Accepted: {', '.join(accepted) or '(none)'}. (If a base recipe set it for another type, drop it with {where}.{key}=null.)"))
            continue
        expected = _type_problem(params[key].default, value, params[key].annotation)
        if expected:
            problems.append(Problem(f"{where}.{key}", "wrong-type", f"expected {expected}, got {value!r}."))
    if len(problems) == 1:
        raise RecipeError(str(problems[0]), key=problems[0].key, code=problems[0].code, problems=problems)
    if problems:
        raise RecipeError.listing(problems)


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
