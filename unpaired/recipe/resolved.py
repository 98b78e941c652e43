"""The resolved recipe: what a run asks for, made once by the check and read by every job.

:func:`resolve` validates a loaded recipe (every problem at once, :func:`unpaired.recipe.validate.validate`)
and turns it into settled facts: each network's kind, each loss term's plugin, side and weight, the
active terms, the image graph, the step plans (:mod:`unpaired.recipe.plan`), the device and the
precision, and the weights ``init_from`` starts from (resolved to one checkpoint and its SHA-256).
The trainer, the executor, the evaluator, the translator, export and the check's dry run read it;
none re-derives it, and nothing changes it (its config is read-only). :meth:`ResolvedRecipe.build`
is the one way to make a component from its spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from unpaired.errors import CheckpointError, RecipeError
from unpaired.plugin.registry import Registry, Spec, default_registry
from unpaired.recipe.graph import ImageGraph
from unpaired.recipe.load import plugin_args, to_yaml
from unpaired.recipe.plan import StepPlan, make_plan
from unpaired.recipe.validate import data_values, network_kind, raise_problems, validate
from unpaired.runs import checkpoint
from unpaired.runtime.device import pick_device, resolve_precision


@dataclass(frozen=True)
class Network:
    """One network of the recipe: its ``kind`` (generator or discriminator), the spec its plugin is
    built from, its initialisation (an init plugin name, or ``none``, with its gain), whether its
    weights are spectrally normalised, and the augmentation every input of a discriminator goes
    through (or None)."""

    name: str
    kind: str
    spec: Spec
    init: str
    init_gain: float
    spectral_norm: bool = False
    augment: Spec | None = None


@dataclass(frozen=True)
class InitFrom:
    """Where a new run's weights come from: one checkpoint, the networks taken from it, and the
    SHA-256 of its weights file (recorded in the run's recipe.yaml)."""

    checkpoint: Path
    networks: tuple[str, ...]
    sha256: str
    sources: Mapping[str, str] = field(default_factory=dict)  # network -> the checkpoint's network, where they differ

    def source(self, network: str) -> str:
        """The checkpoint's network that ``network`` starts from."""
        return self.sources.get(network, network)


@dataclass(frozen=True)
class ResolvedRecipe:
    """A checked recipe and everything derived from it, read-only.

    Attributes:
        config: the merged recipe (read-only ``DictConfig``): plain settings such as ``train``,
            ``data`` and ``eval`` are read from it.
        registry: the components, the recipe's own ``plugins:`` modules included.
        networks: name -> :class:`Network`, in recipe order.
        graph: the image graph.
        steps: the step plans, in recipe order.
        device: where training runs (``None`` for a saved run's recipe read for inference).
        precision: ``fp32``, ``bf16`` or ``fp16`` (``auto`` resolved for ``device``; ``None`` with it).
        init_from: the weights a new run starts from, or None.
        yaml: the recipe as runs and checkpoints store it (``init_from`` as resolved).
        plugin_error: for a saved run's recipe (``checked=False``), why its ``plugins:`` modules
            could not be imported (they are left out), else None.
    """

    config: DictConfig
    registry: Registry
    networks: Mapping[str, Network]
    graph: ImageGraph
    steps: tuple[StepPlan, ...]
    device: torch.device | None
    precision: str | None
    init_from: InitFrom | None
    yaml: str
    plugin_error: str | None = None

    # the plain sections, as the handlers and plugins that read ``trainer.recipe.train`` expect
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def data(self) -> DictConfig:
        return self.config.data

    @property
    def train(self) -> DictConfig:
        return self.config.train

    @property
    def eval(self) -> DictConfig:
        return self.config.eval

    @property
    def samples(self) -> list[str]:
        return list(self.config.samples)

    @property
    def inference(self) -> DictConfig:
        return self.config.inference

    @property
    def scheduler(self) -> Spec:
        """The LR schedule's plugin and args (its ``optimizer`` is injected, one per step)."""
        return spec("scheduler", self.config.train.scheduler, "train.scheduler")

    def generators(self) -> list[str]:
        """The networks that are not discriminators, in recipe order."""
        return [n for n, net in self.networks.items() if net.kind == "generator"]

    def build(self, spec: Spec, **injected) -> Any:
        """The component ``spec`` names, built by its plugin (:meth:`Registry.build`)."""
        return self.registry.build(spec, **injected)


def spec(kind: str, entry, where: str, key: str = "type") -> Spec:
    """The :class:`Spec` of a recipe entry with a plugin name (under ``key``) and ``args``: the one
    way a component is described for :meth:`ResolvedRecipe.build`."""
    return Spec(kind, str(entry[key]), MappingProxyType(plugin_args(entry["args"])), where)


def resolve(recipe: DictConfig | ResolvedRecipe, registry: Registry | None = None, *, local_rank: int = 0,
            checked: bool = True, new_run: bool = True) -> ResolvedRecipe:
    """Check ``recipe`` and resolve it (a :class:`ResolvedRecipe` is returned as it is).

    Args:
        recipe: a recipe from :func:`unpaired.recipe.load.load_recipe` (left unchanged).
        registry: the components (default: the entry-point registry); the recipe's ``plugins:``
            are added to a copy.
        local_rank: the CUDA device ``device: auto`` means in a ``torchrun`` job.
        checked: ``False`` for the saved recipe of a run, which was checked when it trained: no
            validation, no device, and plugins that no longer import are tolerated (translation
            needs only the networks' plugins).
        new_run: resolve ``init_from`` (a run that starts); a resumed run keeps the record its
            recipe holds and never reads the source again.

    Raises:
        RecipeError: every problem of the recipe (:attr:`RecipeError.problems`).
    """
    if isinstance(recipe, ResolvedRecipe):
        return recipe
    base = registry or default_registry()
    config = OmegaConf.create(recipe)  # a copy: the caller's recipe is never changed
    plugin_error = None
    if checked:
        raise_problems(validate(config, base))
        registry = base.for_recipe(config)
    else:
        try:
            registry = base.for_recipe(config)
        except RecipeError as err:
            registry, plugin_error = base, str(err)
    device = pick_device(config.device, local_rank) if checked else None
    precision = resolve_precision(config.train.precision, device) if checked else None
    init = _init_from(config) if checked and new_run and config.init_from is not None else None
    if init is not None:
        config.init_from.path, config.init_from.networks = str(init.checkpoint), list(init.networks)
        config.init_from.sha256 = init.sha256
    networks = {name: Network(name, network_kind(config, name), spec(network_kind(config, name), net, f"networks.{name}"),
                              net.init, net.init_gain, net.spectral_norm,
                              spec("augmentation", net.augment, f"networks.{name}.augment") if net.augment else None)
                for name, net in config.networks.items()}
    ops = {name: registry.create("graph_op", spec.op, f"images.{name}.op", **plugin_args(spec.args))
           for name, spec in config.images.items() if spec.op}
    graph = ImageGraph(config.images, data_values(config, registry), ops)
    OmegaConf.set_readonly(config, True)
    return ResolvedRecipe(config, registry, MappingProxyType(networks), graph, tuple(make_plan(config, graph, registry)),
                          device, precision, init, to_yaml(config), plugin_error)


def _init_from(config: DictConfig) -> InitFrom:
    """The checkpoint ``init_from.path`` names and the SHA-256 of its weights file.

    Raises:
        RecipeError: no checkpoint there, or not the recorded ``sha256``.
    """
    spec_ = config.init_from
    try:
        ckpt = checkpoint.latest(Path(spec_.path))
    except CheckpointError as err:
        raise RecipeError(f"init_from.path: {err}", key="init_from.path", code="no-checkpoint") from err
    sha = checkpoint.file_sha256(ckpt / checkpoint.WEIGHTS)
    if spec_.sha256 and spec_.sha256 != sha:
        raise RecipeError(f"init_from.sha256: {ckpt / checkpoint.WEIGHTS} has SHA-256 {sha}, not the recorded "
                          f"{spec_.sha256} (other weights than the recipe was saved with, or a base recipe's record); "
                          "set init_from.sha256=null to start from these.", key="init_from.sha256", code="sha256")
    sources = dict(spec_.map)
    return InitFrom(ckpt.resolve(), tuple(spec_.networks) or tuple(sources) or tuple(config.networks), sha,
                    MappingProxyType(sources))
