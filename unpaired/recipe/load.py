"""Loading recipes: a file or built-in name, its ``base:`` chain, ``key=value`` overrides, and the
YAML round trip of a run's saved recipe.

Loading: ``base:`` chains are merged first (the base's keys, then the child's), then command-line
``key=value`` overrides. Unknown keys and wrong types fail with the key path;
:func:`unpaired.recipe.validate.validate` then checks the meaning.
"""

from __future__ import annotations

from dataclasses import is_dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unpaired.errors import RecipeError, warn
from unpaired.plugin.registry import closest
from unpaired.recipe.schema import LISTS, MAPPINGS, Recipe


#: The built-in recipes: package data of ``unpaired_recipes`` (the repository's ``recipes/``).
RECIPE_DIR = Path(str(files("unpaired_recipes")))


def _matches(tree, parts: list[str], path: tuple = ()):
    """(dotted key, value) of each entry of the plain ``tree`` that ``parts`` (with ``*``) names."""
    if not parts:
        yield ".".join(map(str, path)), tree
    elif isinstance(tree, dict):
        keys = list(tree) if parts[0] == "*" else [parts[0]] if parts[0] in tree else []
        for key in keys:
            yield from _matches(tree[key], parts[1:], path + (key,))


def check_shapes(cfg: DictConfig, source: str) -> None:
    """Fail with the key when a section or entry that is a mapping or a list is something else.

    Raises:
        RecipeError: names ``source``, the key and the value found (null, which deletes, is allowed).
    """
    tree = OmegaConf.to_container(cfg, resolve=False)
    for patterns, wanted, kind in ((MAPPINGS, dict, "mapping (key: value lines, or {key: value})"),
                                   (LISTS, list, "list ([a, b])")):
        for pattern in patterns:
            for key, value in _matches(tree, pattern.split(".")):
                if value is not None and not isinstance(value, wanted):
                    raise RecipeError(f"{source}: recipe key '{key}' must be a {kind}, got {value!r}.",
                                      key=key, code="bad-shape")
    base = tree.get("base")
    if base is not None and not isinstance(base, str):
        raise RecipeError(f"{source}: recipe key 'base' is one recipe (a file or built-in name), got {base!r}.",
                          key="base", code="bad-shape")


#: Keys renamed since: old key -> new key. A recipe or a run's saved recipe that sets an old key
#: loads as if it set the new one (a warning names it, except in a saved run's recipe).
RENAMED = {"train.max_steps": "train.max_iterations"}


def _upgrade(cfg: DictConfig, source: str, quiet: bool = False) -> DictConfig:
    """``cfg`` with the keys of :data:`RENAMED` moved to their new names (in place)."""
    for old, new in RENAMED.items():
        section, key = old.rsplit(".", 1)
        parent = OmegaConf.select(cfg, section)
        if isinstance(parent, DictConfig) and key in parent:
            value = parent.pop(key)
            OmegaConf.update(cfg, new, value, force_add=True)
            if not quiet:
                warn(f"{source}: recipe key '{old}' is now '{new}'; it was read as {new}={value}.")
    return cfg


def _error(err: OmegaConfBaseException, source: str) -> RecipeError:
    key = getattr(err, "full_key", None) or "?"
    msg = str(getattr(err, "msg", err)).splitlines()[0]
    return RecipeError(f"{source}: recipe key '{key}': {msg}", key=str(key), code="schema")


def find_recipe(path: str | Path) -> Path:
    """Resolve a recipe path, or a bare name such as ``cyclegan`` in the built-in recipes folder."""
    p = Path(path)
    for cand in (p, p.with_suffix(".yaml"), RECIPE_DIR / p, RECIPE_DIR / p.with_suffix(".yaml")):
        if cand.is_file():
            return cand
    known = sorted(f.relative_to(RECIPE_DIR).with_suffix("").as_posix() for f in RECIPE_DIR.rglob("*.yaml"))
    raise RecipeError(
        f"recipe '{path}' not found (looked for the file and in {RECIPE_DIR}).{closest(str(p.with_suffix('')), known)} "
        f"Built-in recipes: {', '.join(known)}.",
        key=str(path), code="no-recipe",
    )


def _read(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml errors carry line numbers; keep them
        raise RecipeError(f"{path}: not a valid YAML recipe: {err}", key=str(path), code="bad-yaml") from err
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"{path}: a recipe is a YAML mapping at top level.", key=str(path), code="bad-shape")
    return cfg


def _load_chain(cfg: DictConfig, folder: Path, source: str, seen: tuple = ()) -> list[tuple[str, Path, DictConfig]]:
    """``cfg`` after its ``base`` chain: [(source, folder, config), ...], the deepest base first."""
    check_shapes(cfg, source)
    _upgrade(cfg, source)
    chain = []
    base = cfg.get("base")
    if base:
        try:
            base_path = (folder / base if (folder / base).is_file() else find_recipe(base)).resolve()
        except RecipeError as err:
            raise RecipeError(f"{source}: base: {err}", key="base", code="no-recipe") from err
        if base_path in seen:
            raise RecipeError(f"{base_path}: 'base' chain loops back to itself ({' -> '.join(map(str, seen))}).",
                              key="base", code="base-loop")
        chain = _load_chain(_read(base_path), base_path.parent, str(base_path), seen + (base_path,))
    return chain + [(source, folder, cfg)]


def _typed_entries(cfg) -> list[tuple[tuple[str, ...], str]]:
    """(path, key naming the plugin) of every entry whose args belong to its plugin."""
    entries = [(("data",), "dataset"), (("train", "scheduler"), "type"), (("eval", "features"), "type"),
               (("eval", "classifier"), "type")]
    for name in ((cfg.get("eval") or {}).get("metrics") or {}):
        entries.append((("eval", "metrics", name), "type"))
    for name in (cfg.get("networks") or {}):
        entries += [(("networks", name), "type"), (("networks", name, "augment"), "type")]
    for name in (cfg.get("handlers") or {}):
        entries.append((("handlers", name), "type"))
    for sname, step in (cfg.get("steps") or {}).items():
        entries.append((("steps", sname, "optimizer"), "type"))
        for tname in ((step or {}).get("losses") or {}):
            entries += [(("steps", sname, "losses", tname), "adversarial"), (("steps", sname, "losses", tname), "consistency")]
    return entries


def _select(cfg, path):
    for key in path:
        if not isinstance(cfg, DictConfig) or cfg.get(key) is None:
            return None
        cfg = cfg[key]
    return cfg


def _reset_args_on_new_type(merged: DictConfig, child: DictConfig) -> None:
    """A derived recipe that changes a plugin (a network's ``type``, a loss, the dataset, ...)
    starts from the new plugin's defaults: the base's ``args`` are dropped, the child's kept."""
    for path, key in _typed_entries(child):
        new, old = _select(child, path), _select(merged, path)
        if new is None or old is None or new.get(key) is None:
            continue
        if old.get(key) is not None and old[key] != new[key]:
            old.args = {}


def _steps_in_order(merged: DictConfig, child: DictConfig, where: str) -> DictConfig:
    """The steps in the order a derived recipe lists them when it lists them all (steps run in
    recipe order, and a merge keeps the base's); a derived recipe that lists some steps in another
    order than the base's is refused: it may mean a reordering it does not get.

    Raises:
        RecipeError: some steps listed, in another relative order than the merged recipe's.
    """
    listed = list((child.get("steps") or {}).keys())
    order = list(merged.steps.keys())
    if not listed or listed == [n for n in order if n in listed]:
        return merged
    if set(listed) != set(order):
        raise RecipeError(f"{where}: steps {', '.join(listed)} are listed in another order than the base's "
                          f"({', '.join(order)}); steps run in recipe order. List every step to reorder them, or "
                          "keep the base's order.", key="steps", code="step-order")
    nodes = {name: merged.steps[name] for name in listed}
    for name in listed:
        del merged.steps[name]
    for name in listed:
        merged.steps[name] = nodes[name]
    return merged


def load_recipe(source, overrides: list[str] | tuple = (), base_dir: str | Path | None = None) -> DictConfig:
    """Load a recipe with its ``base`` chain and ``key=value`` overrides, checked by schema.

    Args:
        source: a YAML file, the name of a built-in recipe (``cyclegan``, ``cyclegan-fashion``,
            ``pix2pix``, ``cut``, ``ablations/gan-alone``...), or the recipe itself as a dict or
            ``DictConfig`` (its ``base:`` is honoured too).
        overrides: OmegaConf dot-list, e.g. ``["train.epochs=5", "steps.generators.losses.idt_A=null"]``.
        base_dir: where a dict recipe's relative ``base:`` and ``plugins:`` are looked for
            (default: the current directory).

    A derived recipe that changes a plugin (``networks.X.type``, a loss, ``data.dataset``, an
    optimizer or scheduler ``type``) drops the base's ``args`` of that entry: the new plugin
    starts from its own defaults plus the args the derived recipe sets. Command-line overrides
    keep the args (``networks.G_AB.type=resnet networks.G_AB.args.n_blocks=1`` edits one recipe).

    Returns:
        The merged recipe (a structured ``DictConfig``; interpolations resolved lazily).

    Raises:
        RecipeError: missing file, bad YAML, an unknown key, or a value of the wrong type; the
            message names the file and the key path.
    """
    if not isinstance(source, (str, Path, dict, DictConfig)):
        raise RecipeError(f"a recipe is a YAML file, a built-in recipe's name or a dict; got {source!r}.",
                          code="bad-recipe")
    if isinstance(source, (dict, DictConfig)):
        folder = Path(base_dir or ".").resolve()
        chain = _load_chain(OmegaConf.create(source), folder, "recipe (dict)")
    else:
        path = find_recipe(source).resolve()
        chain = _load_chain(_read(path), path.parent, str(path), (path,))
    merged = OmegaConf.structured(Recipe)
    dirs: list[str] = []
    for where, folder, cfg in chain:
        try:
            _reset_args_on_new_type(merged, cfg)
            merged = _steps_in_order(OmegaConf.merge(merged, cfg), cfg, where)
        except OmegaConfBaseException as err:
            raise _error(err, where) from err
        if cfg.get("plugins") and str(folder) not in dirs:
            dirs.append(str(folder))
    merged.base = None
    merged.plugin_dirs = list(dict.fromkeys([*merged.plugin_dirs, *dirs]))
    return apply_overrides(merged, overrides, chain[-1][0])


def apply_overrides(recipe: DictConfig, overrides, source: str = "recipe") -> DictConfig:
    """``recipe`` with ``key=value`` overrides merged in (``null`` deletes an entry).

    Raises:
        RecipeError: an override without '=', one that is not YAML, an unknown key, a value of the
            wrong type or shape, steps listed in another order than the recipe's without all of them
            (``steps={discriminators: {}, generators: {}}`` lists all: it reorders), or a ``${...}``
            that does not resolve (named with ``source``, the
            recipe's file, when there are no overrides).
    """
    if isinstance(overrides, str):  # one override given as a string, not a list of them
        overrides = [overrides]
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise RecipeError(f"command-line override '{item}': write overrides as key=value (null deletes an entry).",
                              key=item, code="bad-override")
    try:
        patch = OmegaConf.from_dotlist(list(overrides))
    except Exception as err:  # a value that is not YAML, e.g. an unclosed [1,2
        raise RecipeError(f"command-line overrides {' '.join(overrides)}: a value is not valid YAML "
                          f"({str(err).splitlines()[0]}); quote the whole key=value for the shell.",
                          code="bad-override") from err
    check_shapes(patch, "command-line override")
    _upgrade(patch, "command-line override")
    try:
        # a whole steps={...} mapping lists the steps in the order wanted; dotted keys edit in place
        whole = OmegaConf.from_dotlist([item for item in overrides if item.split("=", 1)[0].strip() == "steps"])
        merged = drop_nulls(_steps_in_order(OmegaConf.merge(recipe, patch), whole, "command-line override"))
    except OmegaConfBaseException as err:
        raise _error(err, "command-line override") from err
    try:
        OmegaConf.to_container(merged, resolve=True)  # every ${...} resolves: fail here, naming the key
    except OmegaConfBaseException as err:
        raise _error(err, f"{source} with the command-line overrides" if overrides else source) from err
    return merged


def drop_nulls(recipe: DictConfig) -> DictConfig:
    """Delete networks, images, steps, loss terms, metrics, eval classes, handlers and inference
    entries set to ``null`` (how a recipe removes them)."""
    for section in (recipe.networks, recipe.images, recipe.steps, recipe.eval.metrics, recipe.eval.classes,
                    recipe.handlers, recipe.inference):
        for key in [k for k, v in section.items() if v is None]:
            del section[key]
    for step in recipe.steps.values():
        for key in [k for k, v in step.losses.items() if v is None]:
            del step.losses[key]
    return recipe


def from_yaml(text: str) -> DictConfig:
    """A recipe from resolved YAML text (as saved in runs and checkpoints), checked by schema."""
    try:
        cfg = OmegaConf.create(text)
        if not isinstance(cfg, DictConfig):
            raise RecipeError("saved recipe: not a YAML mapping.", code="bad-shape")
        if cfg.get("base"):
            raise RecipeError("saved recipe: it names a base; from_yaml reads resolved recipes (as runs save "
                              "them). Use load_recipe for a recipe with a base: it merges the chain.",
                              key="base", code="bad-shape")
        return drop_nulls(OmegaConf.merge(OmegaConf.structured(Recipe), _upgrade(cfg, "saved recipe", quiet=True)))
    except OmegaConfBaseException as err:
        raise _error(err, "saved recipe") from err


def to_yaml(recipe: DictConfig) -> str:
    """The fully resolved recipe as YAML (what each run and checkpoint stores)."""
    return OmegaConf.to_yaml(recipe, resolve=True)


def set_keys(recipe: DictConfig) -> dict:
    """The resolved recipe without the keys that hold their schema default (:mod:`unpaired.recipe.schema`):
    what the recipe and its bases set (``unpaired recipe show --changed``). A key of a network, image,
    step or loss term is kept where it differs from that entry's default."""
    def walk(node: Any, plain: Any) -> Any:
        kind = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if not isinstance(plain, dict) or not is_dataclass(kind):
            return plain if not isinstance(plain, dict) else {k: walk(node[k], v) for k, v in plain.items()}
        default = OmegaConf.to_container(OmegaConf.structured(kind))
        return {k: walk(node[k], v) for k, v in plain.items() if k not in default or default[k] != v}
    return walk(recipe, OmegaConf.to_container(recipe, resolve=True))


def plugin_args(args: DictConfig | dict) -> dict:
    """A component's ``args`` as keyword arguments; ``null`` removes an argument (a base recipe's,
    say), so the plugin's default applies."""
    plain = OmegaConf.to_container(args, resolve=True) if isinstance(args, DictConfig) else args
    return {k: v for k, v in plain.items() if v is not None}
