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
from .errors import RecipeError
from .registry import Registry, check_args, closest, default_registry

#: The built-in recipes: package data of ``unpaired_recipes`` (the repository's ``recipes/``).
RECIPE_DIR = Path(str(files("unpaired_recipes")))


@dataclass
class NetworkSpec:
    type: str = MISSING  # a generator or discriminator plugin name
    args: Dict[str, Any] = field(default_factory=dict)
    init: str = "normal"  # an init plugin name
    init_gain: float = 0.02


@dataclass
class ImageSpec:
    net: str = MISSING  # network applied ...
    input: str = MISSING  # ... to this image


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


@dataclass
class OptimizerSpec:
    type: str = "adam"
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class StepSpec:
    networks: List[str] = MISSING
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    losses: Dict[str, Optional[LossTerm]] = field(default_factory=dict)


@dataclass
class DataSpec:
    dataset: str = MISSING
    args: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    num_workers: int = 2


@dataclass
class SchedulerSpec:
    type: str = "constant"
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSpec:
    epochs: int = 200
    max_steps: Optional[int] = None  # stop after this many iterations (all epochs counted)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 on CUDA only)
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    log_every: int = 50  # iterations between loss logs (the only host syncs for logging)
    sample_every: int = 500  # iterations between sample grids (and at the end)
    checkpoint_every: int = 1000  # iterations between checkpoints (and at each epoch's end)
    keep_checkpoints: int = 3
    nan_guard: bool = True
    max_nonfinite: int = 5  # non-finite iterations in a row before training stops


@dataclass
class Recipe:
    name: str = "run"
    base: Optional[str] = None
    plugins: List[str] = field(default_factory=list)  # extra plugin modules to register
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
    inference: Dict[str, str] = field(default_factory=dict)  # direction -> generator


#: Images the data provides to every iteration.
DATA_IMAGES = ("real_A", "real_B")
DOMAIN_OF = {"real_A": "A", "real_B": "B"}


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
    known = sorted(f.stem for f in RECIPE_DIR.glob("*.yaml"))
    raise RecipeError(
        f"recipe '{path}' not found (looked for the file and in {RECIPE_DIR}).{closest(p.stem, known)} "
        f"Built-in recipes: {', '.join(known)}."
    )


def _load_chain(path: Path, seen: tuple = ()) -> list[tuple[Path, DictConfig]]:
    if path in seen:
        raise RecipeError(f"{path}: 'base' chain loops back to itself ({' -> '.join(map(str, seen))}).")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml errors carry line numbers; keep them
        raise RecipeError(f"{path}: not a valid YAML recipe: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"{path}: a recipe is a YAML mapping at top level.")
    chain = []
    base = cfg.get("base")
    if base:
        base_path = path.parent / base if (path.parent / base).is_file() else find_recipe(base)
        chain = _load_chain(base_path.resolve(), seen + (path,))
    return chain + [(path, cfg)]


def load_recipe(path: str | Path, overrides: list[str] | tuple = ()) -> DictConfig:
    """Load a recipe file with its ``base`` chain and ``key=value`` overrides, checked by schema.

    Args:
        path: a YAML file, or the name of a built-in recipe (``cyclegan``, ``cyclegan-fashion``).
        overrides: OmegaConf dot-list, e.g. ``["train.epochs=5", "steps.generators.losses.idt_A=null"]``.

    Returns:
        The merged recipe (a structured ``DictConfig``; interpolations resolved lazily).

    Raises:
        RecipeError: missing file, bad YAML, an unknown key, or a value of the wrong type; the
            message names the file and the key path.
    """
    merged = OmegaConf.structured(Recipe)
    for file, cfg in _load_chain(find_recipe(path)):
        try:
            merged = OmegaConf.merge(merged, cfg)
        except OmegaConfBaseException as err:
            raise _error(err, str(file)) from err
    merged.base = None
    return apply_overrides(merged, overrides)


def apply_overrides(recipe: DictConfig, overrides) -> DictConfig:
    """``recipe`` with ``key=value`` overrides merged in (``null`` deletes an entry).

    Raises:
        RecipeError: an override without '=', an unknown key or a value of the wrong type.
    """
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"command-line override '{item}': write overrides as key=value (null deletes an entry).")
    try:
        merged = OmegaConf.merge(recipe, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise _error(err, "command-line override") from err
    return drop_nulls(merged)


def drop_nulls(recipe: DictConfig) -> DictConfig:
    """Delete networks, images, steps and loss terms set to ``null`` (how a recipe removes them)."""
    for section in (recipe.networks, recipe.images, recipe.steps):
        for key in [k for k, v in section.items() if v is None]:
            del section[key]
    for step in recipe.steps.values():
        for key in [k for k, v in step.losses.items() if v is None]:
            del step.losses[key]
    return recipe


def from_yaml(text: str) -> DictConfig:
    """A recipe from resolved YAML text (as saved in runs and checkpoints), checked by schema."""
    try:
        return drop_nulls(OmegaConf.merge(OmegaConf.structured(Recipe), OmegaConf.create(text)))
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
    accepted, each network, image and step a recipe names is defined, each loss term is complete,
    and channel counts agree: a network's input image has its ``in_channels``, and a consistency
    term (e.g. the identity loss) compares images with equal channel counts.

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
    for module in recipe.plugins:
        try:
            reg.register_plugin(module)
        except RecipeError as err:
            problems.append(str(err))
    nets, images = recipe.networks, recipe.images

    def check_component(kind, name, args, where, args_where=None):
        try:
            comp = reg.get(kind, name, where)
            if args is not None:
                check_args(comp.factory, plugin_args(args), args_where or f"{where}.args")
        except RecipeError as err:
            problems.append(str(err))

    check_component("dataset", recipe.data.dataset, recipe.data.args, "data.dataset", "data.args")
    kinds = {name: network_kind(recipe, name) for name in nets}
    for name, spec in nets.items():
        check_component(kinds[name], spec.type, spec.args, f"networks.{name}")
        check_component("init", spec.init, None, f"networks.{name}.init")
    if not nets:
        problems.append("networks: the recipe defines no networks.")

    def channels(image: str):
        if image in DATA_IMAGES:
            value = recipe.data.args.get("channels", default_arg(reg, "dataset", recipe.data.dataset, "channels"))
            try:
                return None if value is None else domain_channels(value, DOMAIN_OF[image])
            except ValueError as err:
                problems.append(f"data.args.channels: {err}")
                return None
        spec = nets.get(images[image].net) if image in images else None
        if spec is None:
            return None
        return spec.args.get("out_channels", default_arg(reg, kinds[images[image].net], spec.type, "out_channels"))

    def known_image(name, where):
        if name in DATA_IMAGES or name in images:
            return True
        known = list(DATA_IMAGES) + list(images)
        problems.append(f"{where}: image '{name}' is not defined.{closest(name, known)} Defined: {', '.join(known)}.")
        return False

    for name, spec in images.items():
        where = f"images.{name}"
        if name in DATA_IMAGES:
            problems.append(f"{where}: '{name}' is provided by the data; choose another name.")
        if spec.net not in nets:
            problems.append(f"{where}.net: network '{spec.net}' is not defined.{closest(spec.net, nets)}")
            continue
        if known_image(spec.input, f"{where}.input"):
            want = nets[spec.net].args.get("in_channels", default_arg(reg, kinds[spec.net], nets[spec.net].type, "in_channels"))
            have = channels(spec.input)
            if want is not None and have is not None and want != have:
                problems.append(
                    f"{where}: network '{spec.net}' takes {want} input channels but '{spec.input}' has "
                    f"{have}. Set networks.{spec.net}.args.in_channels, or drop this image and the "
                    "terms that use it (an identity loss needs equal input and output channels)."
                )
    _check_cycles(images, problems)

    if not recipe.steps:
        problems.append("steps: the recipe defines no optimisation steps.")
    for sname, step in recipe.steps.items():
        where = f"steps.{sname}"
        for net in step.networks:
            if net not in nets:
                problems.append(f"{where}.networks: network '{net}' is not defined.{closest(net, nets)}")
        check_component("optimizer", step.optimizer.type, step.optimizer.args, f"{where}.optimizer")
        if not active_terms(step):
            problems.append(f"{where}.losses: no active loss term (all are of weight 0); delete the step with {where}=null.")
        for tname, term in active_terms(step).items():
            problems += _check_term(term, f"{where}.losses.{tname}", step, nets, check_component)
            for img in term_images(term):
                known_image(img, f"{where}.losses.{tname}")
            if term.consistency and term.input and term.target:
                ci, ct = channels(term.input), channels(term.target)
                if ci is not None and ct is not None and ci != ct:
                    problems.append(
                        f"{where}.losses.{tname}: '{term.input}' has {ci} channels but '{term.target}' "
                        f"has {ct}; a consistency loss (such as the identity loss) needs equal channel "
                        f"counts. Remove the term ({where}.losses.{tname}=null) or match the channels."
                    )
    check_component("scheduler", recipe.train.scheduler.type, recipe.train.scheduler.args, "train.scheduler")
    if recipe.train.precision not in ("fp32", "bf16", "fp16"):
        problems.append(f"train.precision: '{recipe.train.precision}' is not one of fp32, bf16, fp16.")
    for img in recipe.samples:
        known_image(img, "samples")
    for direction, net in recipe.inference.items():
        if net not in nets:
            problems.append(f"inference.{direction}: network '{net}' is not defined.{closest(net, nets)}")
    return list(dict.fromkeys(problems))  # one message per problem, however often it was met


def network_kind(recipe: DictConfig, name: str) -> str:
    """``"discriminator"`` if an adversarial term judges with network ``name``, else ``"generator"``."""
    return "discriminator" if name in _discriminators(recipe) else "generator"


def _discriminators(recipe: DictConfig) -> set[str]:
    return {
        t.discriminator
        for step in recipe.steps.values()
        for t in step.losses.values()
        if t.discriminator
    }


def _check_term(term, where, step, nets, check_component) -> list[str]:
    problems = []
    if bool(term.adversarial) == bool(term.consistency):
        return [f"{where}: set exactly one of 'adversarial' (a GAN loss) or 'consistency' (e.g. l1)."]
    if term.adversarial:
        check_component("adversarial_loss", term.adversarial, term.args, where)
        if term.discriminator not in nets:
            problems.append(f"{where}.discriminator: network '{term.discriminator}' is not defined.")
        if not term.fake:
            problems.append(f"{where}.fake: an adversarial term needs the generated image it judges.")
        if term.discriminator in step.networks and not term.real:
            problems.append(f"{where}.real: this step trains '{term.discriminator}', so the term needs a real image.")
    else:
        check_component("consistency_loss", term.consistency, term.args, where)
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
    if tr.max_steps is not None:
        positive["train.max_steps"] = tr.max_steps
    problems = [f"{key}: must be at least 1, got {value}." for key, value in positive.items() if value < 1]
    if recipe.data.num_workers < 0:
        problems.append(f"data.num_workers: must be 0 or more, got {recipe.data.num_workers}.")
    for sname, step in recipe.steps.items():
        for tname, term in step.losses.items():
            if term.pool < 0:
                problems.append(f"steps.{sname}.losses.{tname}.pool: must be 0 (off) or more, got {term.pool}.")
    if recipe.device != "auto":
        try:
            device = torch.device(recipe.device)
        except RuntimeError:
            return problems + [f"device: '{recipe.device}' is not a device; use auto, cpu, cuda or cuda:N."]
        if device.type == "cuda" and not torch.cuda.is_available():
            problems.append(f"device: '{recipe.device}' asked for, but CUDA is not available here; use device=cpu or auto.")
    on_cuda = recipe.device.startswith("cuda") or (recipe.device == "auto" and torch.cuda.is_available())
    if tr.precision == "fp16" and not on_cuda:
        problems.append("train.precision: fp16 needs CUDA; use bf16 on the CPU.")
    return problems


def _check_cycles(images: dict, problems: list[str]) -> None:
    for start in images:
        seen, name = [], start
        while name in images:
            if name in seen:
                problems.append(f"images.{start}: its inputs form a loop ({' <- '.join(seen + [name])}).")
                return
            seen.append(name)
            name = images[name].input


def check(recipe: DictConfig, registry: Registry | None = None) -> DictConfig:
    """Validate a recipe; raise :class:`RecipeError` listing every problem at once."""
    problems = validate(recipe, registry)
    if problems:
        raise RecipeError("recipe has %d problem(s):\n  - %s" % (len(problems), "\n  - ".join(problems)))
    return recipe
