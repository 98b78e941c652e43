"""Recipes: what a run asks for, as an OmegaConf YAML file checked against a schema.

A recipe names the networks (plugin + args), the forward passes that make named images, and the
optimisation steps (one optimizer over named networks, a set of weighted loss terms). See
``docs/recipes.md`` for the format and ``recipes/cyclegan.yaml`` for the reference recipe.

Loading: ``base:`` chains are merged first (the base's keys, then the child's), then command-line
``key=value`` overrides. Unknown keys and wrong types fail with the key path; :func:`validate`
then checks that every name a recipe uses is defined and every plugin exists.
"""

from __future__ import annotations

import inspect
from importlib.resources import files
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data import domain_channels
from .graph import DATA_IMAGES, ImageGraph
from .errors import RecipeError
from .registry import Registry, check_args, closest, default_registry

#: The built-in recipes: package data of ``unpaired_recipes`` (the repository's ``recipes/``).
RECIPE_DIR = Path(str(files("unpaired_recipes")))


@dataclass
class NetworkSpec:
    type: str = MISSING  # a generator or discriminator plugin name
    # generator | discriminator; unset: a discriminator if an adversarial term judges with it
    role: Optional[str] = None
    args: Dict[str, Any] = field(default_factory=dict)
    init: str = "normal"  # an init plugin name, or none (keep the plugin's own weights)
    init_gain: float = 0.02


@dataclass
class ImageSpec:
    net: Optional[str] = None  # network applied ...
    input: Any = None  # ... to this image, or to these images (a list: net(a, b))
    concat: Optional[List[str]] = None  # or: these images concatenated along channels


@dataclass
class LossTerm:
    adversarial: Optional[str] = None  # an adversarial_loss plugin name, or
    consistency: Optional[str] = None  # a consistency_loss plugin name
    args: Dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    discriminator: Optional[str] = None  # adversarial: the discriminator network
    real: Optional[str] = None  # adversarial, discriminator side: real image
    fake: Optional[str] = None  # adversarial: generated image
    pool: int = 0  # adversarial, discriminator side: image-pool size (0 = off)
    input: Optional[str] = None  # consistency: compared image ...
    target: Optional[str] = None  # ... and its target
    network: Optional[str] = None  # a network the loss uses itself (e.g. PatchNCE: the generator's features)
    share: Optional[str] = None  # use this other term's loss module (and its parameters) of the same step
    side: Optional[str] = None  # adversarial: generator | discriminator; unset: discriminator if the step trains it


@dataclass
class OptimizerSpec:
    type: str = "adam"
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class StepSpec:
    networks: List[str] = MISSING
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    losses: Dict[str, Optional[LossTerm]] = field(default_factory=dict)
    every: int = 1  # run on every k-th iteration only (e.g. a generator step every 5 critic steps)
    repeat: int = 1  # run k times per iteration on the same batch


@dataclass
class DataSpec:
    dataset: str = MISSING
    args: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    num_workers: int = 2
    on_bad_file: str = "error"  # an unreadable training image stops training before it starts; "skip" drops it


@dataclass
class SchedulerSpec:
    type: str = "constant"
    args: Dict[str, Any] = field(default_factory=dict)
    interval: str = "epoch"  # step the schedule after each epoch, or after each iteration


@dataclass
class TrainSpec:
    epochs: int = 200
    max_steps: Optional[int] = None  # stop after this many iterations (all epochs counted)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA only) | auto (bf16 where the device computes it natively)
    channels_last: bool = False
    compile: bool = False
    # one call for several passes of a network at the same depth (a generator's fake and identity
    # images), for networks that declare ``per_sample = True``: faster for small images and batches
    # (the fashion demo), slower at 256x256 (docs/performance.md)
    batch_passes: bool = False
    deterministic: bool = False
    log_every: int = 50  # iterations between loss logs (the only host syncs for logging)
    sample_every: int = 500  # iterations between sample grids (and at the end)
    checkpoint_every: int = 1000  # iterations between checkpoints (and at each epoch's end)
    eval_every: Optional[int] = None  # epochs between evaluations (the eval section, unpaired_evaluate hooks), and at the end
    keep_checkpoints: int = 3
    report: bool = True  # write report.html (losses, samples, metrics) at the end of training
    nan_guard: bool = True
    max_nonfinite: int = 5  # non-finite iterations in a row before training stops


@dataclass
class PluginSpec:
    type: str = MISSING  # a plugin name of the entry's kind
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricSpec:
    type: Optional[str] = None  # a metric plugin; unset: the entry's own name (fid: {} is the fid metric)
    args: Dict[str, Any] = field(default_factory=dict)
    directions: List[str] = field(default_factory=list)  # only these directions (unset: all)


@dataclass
class EvalSpec:
    # Entries set to null are deleted. Empty: the recipe asks for no evaluation.
    metrics: Dict[str, Optional[MetricSpec]] = field(default_factory=dict)
    features: Optional[PluginSpec] = None  # a feature_extractor: the space of FID/KID and diversity
    classifier: Optional[PluginSpec] = None  # a classifier judging translations (torchscript: a file)
    classes: Dict[str, Any] = field(default_factory=dict)  # domain (A, B) -> its class, by name or index
    split: str = "test"
    num_images: Optional[int] = None  # the first N images of each domain's split (unset: all)
    batch_size: int = 50
    best: Optional[str] = None  # keep checkpoints/best by this metric: <direction>/<key>, or <key> (mean over directions)
    directions: List[str] = field(default_factory=list)  # unset: every inference direction named <X>to<Y>


@dataclass
class InitFromSpec:
    # A new run's networks start from another run's weights (docs/training.md, unpaired/runs.py).
    path: str = MISSING  # a run directory (its latest checkpoint) or a checkpoint directory
    networks: List[str] = field(default_factory=list)  # these networks only (unset: every network of the recipe)
    sha256: Optional[str] = None  # the weights file's SHA-256: recorded by training; when set, checked


@dataclass
class Recipe:
    name: str = "run"
    base: Optional[str] = None
    plugins: List[str] = field(default_factory=list)  # extra plugin modules to register
    plugin_dirs: List[str] = field(default_factory=list)  # where they are imported from (the recipe files' folders)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out_dir: Optional[str] = None  # default runs/<name>
    data: DataSpec = field(default_factory=DataSpec)
    # Entries set to null (e.g. from the command line) are deleted after merging.
    networks: Dict[str, Optional[NetworkSpec]] = field(default_factory=dict)
    images: Dict[str, Optional[ImageSpec]] = field(default_factory=dict)
    steps: Dict[str, Optional[StepSpec]] = field(default_factory=dict)
    train: TrainSpec = field(default_factory=TrainSpec)
    samples: List[str] = field(default_factory=list)  # image names shown in sample grids
    # direction -> a generator, a chain of networks [E, D], or an image of the graph (made from one data image)
    inference: Dict[str, Any] = field(default_factory=dict)
    eval: EvalSpec = field(default_factory=EvalSpec)
    init_from: Optional[InitFromSpec] = None  # start a new run's networks from another run's weights


DOMAIN_OF = {"real_A": "A", "real_B": "B"}


#: Keys whose value is a mapping ("*": every entry), checked before merging so that a wrong shape is
#: named by its key rather than failing deep inside the merge; and the keys that are lists.
MAPPINGS = ("data", "data.args", "networks", "networks.*", "networks.*.args", "images", "images.*", "steps",
            "steps.*", "steps.*.optimizer", "steps.*.optimizer.args", "steps.*.losses", "steps.*.losses.*", "train",
            "train.scheduler", "train.scheduler.args", "eval", "eval.metrics", "eval.metrics.*", "eval.features",
            "eval.classifier", "eval.classes", "inference", "init_from")
LISTS = ("plugins", "samples")


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
                    raise RecipeError(f"{source}: recipe key '{key}' must be a {kind}, got {value!r}.")
    base = tree.get("base")
    if base is not None and not isinstance(base, str):
        raise RecipeError(f"{source}: recipe key 'base' is one recipe (a file or built-in name), got {base!r}.")


def _error(err: OmegaConfBaseException, source: str) -> RecipeError:
    key = getattr(err, "full_key", None) or "?"
    msg = str(getattr(err, "msg", err)).splitlines()[0]
    return RecipeError(f"{source}: recipe key '{key}': {msg}")


def find_recipe(path: str | Path) -> Path:
    """Resolve a recipe path, or a bare name such as ``cyclegan`` in the built-in recipes folder."""
    p = Path(path)
    for cand in (p, p.with_suffix(".yaml"), RECIPE_DIR / p, RECIPE_DIR / p.with_suffix(".yaml")):
        if cand.is_file():
            return cand
    known = sorted(f.relative_to(RECIPE_DIR).with_suffix("").as_posix() for f in RECIPE_DIR.rglob("*.yaml"))
    raise RecipeError(
        f"recipe '{path}' not found (looked for the file and in {RECIPE_DIR}).{closest(str(p.with_suffix('')), known)} "
        f"Built-in recipes: {', '.join(known)}."
    )


def _read(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml errors carry line numbers; keep them
        raise RecipeError(f"{path}: not a valid YAML recipe: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"{path}: a recipe is a YAML mapping at top level.")
    return cfg


def _load_chain(cfg: DictConfig, folder: Path, source: str, seen: tuple = ()) -> list[tuple[str, Path, DictConfig]]:
    """``cfg`` after its ``base`` chain: [(source, folder, config), ...], the deepest base first."""
    check_shapes(cfg, source)
    chain = []
    base = cfg.get("base")
    if base:
        try:
            base_path = (folder / base if (folder / base).is_file() else find_recipe(base)).resolve()
        except RecipeError as err:
            raise RecipeError(f"{source}: base: {err}") from err
        if base_path in seen:
            raise RecipeError(f"{base_path}: 'base' chain loops back to itself ({' -> '.join(map(str, seen))}).")
        chain = _load_chain(_read(base_path), base_path.parent, str(base_path), seen + (base_path,))
    return chain + [(source, folder, cfg)]


def _typed_entries(cfg) -> list[tuple[tuple[str, ...], str]]:
    """(path, key naming the plugin) of every entry whose args belong to its plugin."""
    entries = [(("data",), "dataset"), (("train", "scheduler"), "type"), (("eval", "features"), "type"),
               (("eval", "classifier"), "type")]
    for name in ((cfg.get("eval") or {}).get("metrics") or {}):
        entries.append((("eval", "metrics", name), "type"))
    for name in (cfg.get("networks") or {}):
        entries.append((("networks", name), "type"))
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
        raise RecipeError(f"a recipe is a YAML file, a built-in recipe's name or a dict; got {source!r}.")
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
            merged = OmegaConf.merge(merged, cfg)
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
            wrong type or shape, or a ``${...}`` that does not resolve (named with ``source``, the
            recipe's file, when there are no overrides).
    """
    if isinstance(overrides, str):  # one override given as a string, not a list of them
        overrides = [overrides]
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise RecipeError(f"command-line override '{item}': write overrides as key=value (null deletes an entry).")
    try:
        patch = OmegaConf.from_dotlist(list(overrides))
    except Exception as err:  # a value that is not YAML, e.g. an unclosed [1,2
        raise RecipeError(f"command-line overrides {' '.join(overrides)}: a value is not valid YAML "
                          f"({str(err).splitlines()[0]}); quote the whole key=value for the shell.") from err
    check_shapes(patch, "command-line override")
    try:
        merged = drop_nulls(OmegaConf.merge(recipe, patch))
    except OmegaConfBaseException as err:
        raise _error(err, "command-line override") from err
    try:
        OmegaConf.to_container(merged, resolve=True)  # every ${...} resolves: fail here, naming the key
    except OmegaConfBaseException as err:
        raise _error(err, f"{source} with the command-line overrides" if overrides else source) from err
    return merged


def drop_nulls(recipe: DictConfig) -> DictConfig:
    """Delete networks, images, steps, loss terms, metrics and eval classes set to ``null`` (how a
    recipe removes them)."""
    for section in (recipe.networks, recipe.images, recipe.steps, recipe.eval.metrics, recipe.eval.classes):
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
            raise RecipeError("saved recipe: not a YAML mapping.")
        if cfg.get("base"):
            raise RecipeError("saved recipe: it names a base; from_yaml reads resolved recipes (as runs save "
                              "them). Use load_recipe for a recipe with a base: it merges the chain.")
        return drop_nulls(OmegaConf.merge(OmegaConf.structured(Recipe), cfg))
    except OmegaConfBaseException as err:
        raise _error(err, "saved recipe") from err


def to_yaml(recipe: DictConfig) -> str:
    """The fully resolved recipe as YAML (what each run and checkpoint stores)."""
    return OmegaConf.to_yaml(recipe, resolve=True)


def plugin_args(args: DictConfig | dict) -> dict:
    """A component's ``args`` as keyword arguments; ``null`` removes an argument (a base recipe's,
    say), so the plugin's default applies."""
    plain = OmegaConf.to_container(args, resolve=True) if isinstance(args, DictConfig) else args
    return {k: v for k, v in plain.items() if v is not None}


# -- semantic checks -------------------------------------------------------------------------------
def active_terms(step: DictConfig) -> dict[str, DictConfig]:
    """Loss terms that take part: those of non-zero weight."""
    return {n: t for n, t in step.losses.items() if t.weight != 0}


def term_images(term: DictConfig) -> list[str]:
    """The image names a loss term reads."""
    return [v for v in (term.real, term.fake, term.input, term.target) if v is not None]


def default_arg(registry: Registry, kind: str, name: str, arg: str):
    """The default of argument ``arg`` of component ``name``, or None (unknown or no default)."""
    try:
        comp = registry.get(kind, name)
    except RecipeError:
        return None
    param = inspect.signature(comp.factory).parameters.get(arg)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def validate(recipe: DictConfig, registry: Registry | None = None) -> list[str]:
    """Every problem in a recipe, checked before any network is built.

    Checks that each plugin name exists (with the closest known name), each component argument is
    accepted, each network, image and step a recipe names is defined, each image has one way of
    being made and no loops, each loss term is complete, and channel counts agree: a network's
    input image has its ``in_channels``, and a consistency term (e.g. the identity loss) compares
    images with equal channel counts.

    Returns:
        A list of messages, each starting with the recipe key path; empty when the recipe is good.
    """
    reg = registry or default_registry()
    problems: list[str] = []
    missing = sorted(OmegaConf.missing_keys(recipe))
    for key in missing:
        problems.append(f"{key}: required value is missing (???); set it in the recipe or as {key}=VALUE.")
    if any(".args." not in key for key in missing):  # the recipe's structure is incomplete
        return problems
    problems += _check_numbers(recipe)
    try:
        reg = reg.for_recipe(recipe)
    except RecipeError as err:
        problems.append(str(err))
    nets, images = recipe.networks, recipe.images

    def check_component(kind, name, args, where, args_where=None, injected=()):
        try:
            comp = reg.get(kind, name, where)
            if args is not None:
                given = plugin_args(args)
                for key in injected:
                    if key in given:
                        problems.append(f"{args_where or where + '.args'}.{key}: set by the trainer; remove it from args.")
                check_args(comp.factory, {k: v for k, v in given.items() if k not in injected}, args_where or f"{where}.args")
        except RecipeError as err:
            problems.append(str(err))

    check_component("dataset", recipe.data.dataset, recipe.data.args, "data.dataset", "data.args")
    kinds = {}
    for name, spec in nets.items():
        if spec.role not in (None, "generator", "discriminator"):
            problems.append(f"networks.{name}.role: '{spec.role}' is not generator or discriminator.")
            continue
        kinds[name] = network_kind(recipe, name)
        before = len(problems)
        check_component(kinds[name], spec.type, spec.args, f"networks.{name}")
        if spec.role and len(problems) > before and f"unknown {kinds[name]}" in problems[-1]:
            problems[-1] += f" (networks.{name}.role is {spec.role})"
        check_component("init", spec.init, None, f"networks.{name}.init")
    if not nets:
        problems.append("networks: the recipe defines no networks.")

    graph = ImageGraph({n: spec for n, spec in images.items() if _image_problems(n, spec, problems) is None})

    def net_arg(net: str, arg: str):
        spec = nets[net]
        return spec.args.get(arg, default_arg(reg, kinds.get(net, "generator"), spec.type, arg))

    def channels(image: str):
        if image in DATA_IMAGES:
            value = recipe.data.args.get("channels", default_arg(reg, "dataset", recipe.data.dataset, "channels"))
            try:
                return None if value is None else domain_channels(value, DOMAIN_OF[image])
            except ValueError as err:
                problems.append(f"data.args.channels: {err}")
                return None
        node = graph.nodes.get(image)
        if node is None:
            return None
        if node.net is None:  # a concatenation
            parts = [channels(src) for src in node.inputs]
            return None if None in parts else sum(parts)
        return net_arg(node.net, "out_channels") if node.net in nets else None

    def known_image(name, where):
        if name in graph:
            return True
        known = graph.known()
        problems.append(f"{where}: image '{name}' is not defined.{closest(name, known)} Defined: {', '.join(known)}.")
        return False

    loops = graph.loops()
    problems += loops
    for name, node in graph.nodes.items():
        where = f"images.{name}"
        if name in DATA_IMAGES:
            problems.append(f"{where}: '{name}' is provided by the data; choose another name.")
        if node.net is not None and node.net not in nets:
            problems.append(f"{where}.net: network '{node.net}' is not defined.{closest(node.net, nets)}")
            continue
        if not all(known_image(src, f"{where}.{'input' if node.net else 'concat'}") for src in node.inputs):
            continue
        if node.net is not None and len(node.inputs) == 1 and not loops:
            want, have = net_arg(node.net, "in_channels"), channels(node.inputs[0])
            if want is not None and have is not None and want != have:
                problems.append(
                    f"{where}: network '{node.net}' takes {want} input channels but '{node.inputs[0]}' has "
                    f"{have}. Set networks.{node.net}.args.in_channels, or drop this image and the "
                    "terms that use it (an identity loss needs equal input and output channels)."
                )

    if not recipe.steps:
        problems.append("steps: the recipe defines no optimisation steps.")
    for sname, step in recipe.steps.items():
        where = f"steps.{sname}"
        if not step.networks:
            problems.append(f"{where}.networks: name the networks this step optimises.")
        for net in step.networks:
            if net not in nets:
                problems.append(f"{where}.networks: network '{net}' is not defined.{closest(net, nets)}")
        check_component("optimizer", step.optimizer.type, step.optimizer.args, f"{where}.optimizer", injected=("params",))
        lr = step.optimizer.args.get("lr")
        if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr <= 0:
            problems.append(f"{where}.optimizer.args.lr: must be above 0, got {lr} (a network that should not "
                            f"learn is left out of {where}.networks).")
        for tname, term in step.losses.items():
            if term.weight < 0:
                problems.append(f"{where}.losses.{tname}.weight: must be 0 or more (0 switches the term off), "
                                f"got {term.weight}; a negative weight maximises the loss.")
        if not active_terms(step):
            problems.append(f"{where}.losses: no active loss term (all are of weight 0); delete the step with {where}=null.")
        for tname, term in active_terms(step).items():
            problems += _check_term(term, f"{where}.losses.{tname}", step, nets, check_component)
            for img in term_images(term):
                known_image(img, f"{where}.losses.{tname}")
            if term.consistency and term.input and term.target and not term.network and not loops:
                ci, ct = channels(term.input), channels(term.target)
                if ci is not None and ct is not None and ci != ct:
                    problems.append(
                        f"{where}.losses.{tname}: '{term.input}' has {ci} channels but '{term.target}' "
                        f"has {ct}; a consistency loss (such as the identity loss) needs equal channel "
                        f"counts. Remove the term ({where}.losses.{tname}=null) or match the channels."
                    )
    sch = recipe.train.scheduler
    check_component("scheduler", sch.type, sch.args, "train.scheduler", injected=("optimizer",))
    if sch.interval not in ("epoch", "iteration"):
        problems.append(f"train.scheduler.interval: '{sch.interval}' is not epoch or iteration.")
    elif sch.interval == "iteration" and sch.type == "plateau":
        problems.append("train.scheduler.interval: plateau follows the epoch's mean loss; use interval: epoch.")
    if recipe.train.precision not in ("fp32", "bf16", "fp16", "auto"):
        problems.append(f"train.precision: '{recipe.train.precision}' is not one of fp32, bf16, fp16, auto.")
    for img in recipe.samples:
        if known_image(img, "samples") and not loops and channels(img) not in (None, 1, 3):
            problems.append(f"samples: image '{img}' has {channels(img)} channels; a sample grid shows 1- or "
                            "3-channel images.")
    for direction, target in recipe.inference.items():
        where = f"inference.{direction}"
        problems += _check_inference(where, target, nets, graph, kinds)
        if isinstance(target, str) and target in graph.nodes and not loops and channels(target) not in (None, 1, 3):
            problems.append(f"{where}: image '{target}' has {channels(target)} channels; translations are "
                            "written as 1- or 3-channel images.")
    problems += _check_eval(recipe.eval, check_component)
    return list(dict.fromkeys(problems))  # one message per problem, however often it was met


def _check_eval(ev: DictConfig, check_component) -> list[str]:
    """The eval section's plugins and their args, and its domain keys."""
    problems = []
    for name, spec in ev.metrics.items():
        check_component("metric", spec.type or name, spec.args, f"eval.metrics.{name}" + (".type" if spec.type else ""),
                        f"eval.metrics.{name}.args")
    for kind, key in (("feature_extractor", "features"), ("classifier", "classifier")):
        if ev[key] is not None:
            check_component(kind, ev[key].type, ev[key].args, f"eval.{key}.type", f"eval.{key}.args")
    for domain in ev.classes:
        if domain not in ("A", "B"):
            problems.append(f"eval.classes.{domain}: domains are A and B.")
    if ev.classes and ev.classifier is None:
        problems.append("eval.classes: set eval.classifier too (the classifier whose classes these are).")
    return problems


def _image_problems(name: str, spec, problems: list[str]) -> str | None:
    """A message (also added to ``problems``) when an image entry is malformed, else None."""
    where = f"images.{name}"
    if spec.concat is not None:
        msg = None
        if spec.net is not None or spec.input is not None:
            msg = f"{where}: give either 'concat' (a list of images) or 'net' with 'input', not both."
        elif len(spec.concat) < 2:
            msg = f"{where}.concat: name at least two images to concatenate along channels."
    elif spec.net is None or spec.input is None:
        msg = f"{where}: set 'net' and 'input' (the image is net(input)), or 'concat: [image, image, ...]'."
    elif not (isinstance(spec.input, str) or (OmegaConf.is_list(spec.input) and len(spec.input) > 0
                                                and all(isinstance(i, str) for i in spec.input))):
        msg = f"{where}.input: an image name or a list of image names, got {spec.input!r}."
    else:
        msg = None
    if msg:
        problems.append(msg)
    return msg


def _check_inference(where: str, target, nets, graph: ImageGraph, kinds: dict) -> list[str]:
    """``inference.<direction>``: a generator, a list of generators (applied in order), or an image."""
    if OmegaConf.is_list(target):
        return [f"{where}: network '{n}' is not defined.{closest(n, nets)}" for n in target if n not in nets] + (
            [f"{where}: name at least one network."] if len(target) == 0 else []) + [
            f"{where}: '{n}' is a discriminator; translation applies generators." for n in target
            if kinds.get(n) == "discriminator"]
    if not isinstance(target, str):
        return [f"{where}: a network name, a list of networks, or an image name; got {target!r}."]
    if target in nets:
        return [f"{where}: '{target}' is a discriminator; translation applies generators."] if kinds.get(target) == "discriminator" else []
    if target in DATA_IMAGES:
        return [f"{where}: '{target}' is a data image; name a generator or an image made from it."]
    if target in graph.nodes:
        sources = graph.sources(target)
        if len(sources) != 1:
            return [f"{where}: image '{target}' is made from {', '.join(sorted(sources)) or 'no data image'}; "
                    "translation needs an image made from exactly one data image."]
        return []
    return [f"{where}: network or image '{target}' is not defined.{closest(target, [*nets, *graph.nodes])}"]


def network_kind(recipe: DictConfig, name: str) -> str:
    """A network's component kind: its ``role`` when set, else ``"discriminator"`` if an adversarial
    term judges with it, else ``"generator"``. The one place that decides it."""
    role = recipe.networks[name].get("role")
    if role:
        return role
    judges = {t.discriminator for step in recipe.steps.values() for t in step.losses.values() if t.discriminator}
    return "discriminator" if name in judges else "generator"


def term_side(term, step) -> str:
    """Which side an adversarial term is on: its ``side`` when set, else ``"discriminator"`` when the
    step trains the term's discriminator, else ``"generator"``."""
    return term.side or ("discriminator" if term.discriminator in step.networks else "generator")


def _check_term(term, where, step, nets, check_component) -> list[str]:
    problems = []
    if bool(term.adversarial) == bool(term.consistency):
        return [f"{where}: set exactly one of 'adversarial' (a GAN loss) or 'consistency' (e.g. l1)."]
    if term.network is not None and term.network not in nets:
        problems.append(f"{where}.network: network '{term.network}' is not defined.{closest(term.network, nets)}")
    if term.share is not None:
        other = step.losses.get(term.share)
        if other is None or other.share is not None or (other.adversarial, other.consistency) != (term.adversarial, term.consistency):
            problems.append(f"{where}.share: '{term.share}' must be another term of this step, with the same loss, "
                            "that does not itself share.")
    if term.adversarial:
        check_component("adversarial_loss", term.adversarial, term.args, where)
        if term.discriminator not in nets:
            problems.append(f"{where}.discriminator: network '{term.discriminator}' is not defined.")
        if not term.fake:
            problems.append(f"{where}.fake: an adversarial term needs the generated image it judges.")
        if term.side not in (None, "generator", "discriminator"):
            problems.append(f"{where}.side: '{term.side}' is not generator or discriminator.")
        elif term_side(term, step) == "discriminator" and not term.real:
            problems.append(f"{where}.real: this step trains '{term.discriminator}', so the term needs a real image.")
    else:
        if term.side is not None:
            problems.append(f"{where}.side: only adversarial terms have a side; remove it.")
        check_component("consistency_loss", term.consistency, term.args, where, injected=("network",))
        for key in ("input", "target"):
            if not term[key]:
                problems.append(f"{where}.{key}: a consistency term needs 'input' and 'target' images.")
    return problems


def _check_numbers(recipe: DictConfig) -> list[str]:
    """Counts and intervals that must be positive, and a device that exists."""
    tr = recipe.train
    positive = {"data.batch_size": recipe.data.batch_size, "train.epochs": tr.epochs, "train.log_every": tr.log_every,
                "train.sample_every": tr.sample_every, "train.checkpoint_every": tr.checkpoint_every,
                "train.keep_checkpoints": tr.keep_checkpoints, "train.max_nonfinite": tr.max_nonfinite}
    for key in ("max_steps", "eval_every"):
        if tr[key] is not None:
            positive[f"train.{key}"] = tr[key]
    positive["eval.batch_size"] = recipe.eval.batch_size
    problems = []
    if recipe.eval.num_images is not None and recipe.eval.num_images < 2:
        problems.append(f"eval.num_images: must be at least 2 (FID, KID and diversity compare image sets), "
                        f"got {recipe.eval.num_images}.")
    for sname, step in recipe.steps.items():
        positive[f"steps.{sname}.every"] = step.every
        positive[f"steps.{sname}.repeat"] = step.repeat
    problems += [f"{key}: must be at least 1, got {value}." for key, value in positive.items() if value < 1]
    if recipe.data.num_workers < 0:
        problems.append(f"data.num_workers: must be 0 or more, got {recipe.data.num_workers}.")
    if recipe.data.on_bad_file not in ("error", "skip"):
        problems.append(f"data.on_bad_file: 'error' or 'skip', got '{recipe.data.on_bad_file}'.")
    for sname, step in recipe.steps.items():
        for tname, term in step.losses.items():
            if term.pool < 0:
                problems.append(f"steps.{sname}.losses.{tname}.pool: must be 0 (off) or more, got {term.pool}.")
    from .build import pick_device  # here, not at the top: build imports this module

    try:
        pick_device(recipe.device)
    except RecipeError as err:
        problems.append(str(err))
    on_cuda = recipe.device.startswith("cuda") or (recipe.device == "auto" and torch.cuda.is_available())
    if tr.precision == "fp16" and not on_cuda:
        problems.append("train.precision: fp16 needs CUDA; use bf16 on the CPU.")
    return problems


def check(recipe: DictConfig, registry: Registry | None = None) -> DictConfig:
    """Validate a recipe; raise :class:`RecipeError` listing every problem at once (one line for one)."""
    problems = validate(recipe, registry)
    if len(problems) == 1:
        raise RecipeError(f"recipe: {problems[0]}")
    if problems:
        raise RecipeError("recipe has %d problem(s):\n  - %s" % (len(problems), "\n  - ".join(problems)))
    return recipe
