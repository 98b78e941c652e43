"""Which forward passes each optimisation step needs, derived from the active loss terms.

A recipe's ``steps:`` are its optimisation steps: each updates some networks with one optimizer
from a weighted sum of loss terms. An *iteration* runs every due step on one batch (CycleGAN: the
generators' step, then the discriminators').

For each step, the plan keeps only the images that its active loss terms read, plus their inputs
(:meth:`unpaired.recipe.graph.ImageGraph.order`). An image is *fresh* in a step when a network the
step optimises took part in making it: the step computes it with gradients. Any other image is
computed once per iteration and reused detached (e.g. the discriminator step reuses the
generators' fakes, as in Zhu et al.'s reference implementation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from omegaconf import DictConfig

from unpaired.plugin.registry import Registry, Spec
from unpaired.recipe.graph import ImageGraph
from unpaired.recipe.load import plugin_args
from unpaired.recipe.scalar import Scalar, parse_scalar
from unpaired.recipe.validate import active_terms, declared_images, term_images, term_side


@dataclass(frozen=True)
class Term:
    """One active loss term of a step, resolved.

    Attributes:
        step, name: where it is: ``steps.<step>.losses.<name>``.
        spec: its loss plugin (kind ``adversarial_loss``, ``consistency_loss`` or
            ``gradient_penalty``) and args.
        weight: its weight in the step's sum, a number or a schedule (:mod:`unpaired.recipe.scalar`;
            never 0 throughout: inactive terms are left out).
        side: ``"generator"`` or ``"discriminator"`` for an adversarial term, else None.
        discriminator, real, fake, pool: an adversarial (or penalty) term's network, images and
            image-pool size.
        real_label, fake_label: values given to the discriminator with the real and the fake image.
        input, target, network, networks: a consistency term's images and the networks it reads itself.
        share: the term of the same step whose loss module (and parameters) it uses.
        every: a lazy term runs on every k-th iteration only, its weight multiplied by k.
        reads: further values its loss reads from the step's images (:func:`declared_images`).
        discriminator_args: keyword arguments of the discriminator's calls, ``{"real": {...},
            "fake": {...}}`` (a discriminator with a memory of past batches, UVCGAN2's queues).
    """

    step: str
    name: str
    spec: Spec
    weight: Scalar
    side: str | None = None
    discriminator: str | None = None
    real: str | None = None
    fake: str | None = None
    pool: int = 0
    input: str | None = None
    target: str | None = None
    network: str | None = None
    share: str | None = None
    real_label: str | None = None
    fake_label: str | None = None
    networks: tuple[str, ...] = ()
    every: int = 1
    reads: tuple[str, ...] = ()
    discriminator_args: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def adversarial(self) -> bool:
        return self.spec.kind == "adversarial_loss"

    @property
    def penalty(self) -> bool:
        return self.spec.kind == "gradient_penalty"

    def due(self, iteration: int) -> bool:
        """Whether a lazy term runs at ``iteration`` (0-based), as a step's ``every``."""
        return (iteration + 1) % self.every == 0

    def weight_at(self, iteration: int, epoch: int = 0) -> float:
        """Its weight in the step's sum at ``iteration``: the schedule's value times ``every``
        (a lazy penalty's weight, as StyleGAN2's lazy regularisation scales it)."""
        return self.weight.at(iteration, epoch) * self.every

    @property
    def key(self) -> str:
        """``<step>/<term>``: its name in logs."""
        return f"{self.step}/{self.name}"

    @property
    def where(self) -> str:
        """Its recipe key."""
        return f"steps.{self.step}.losses.{self.name}"

    @property
    def images(self) -> list[str]:
        """The images it reads."""
        return term_images(self)


@dataclass(frozen=True)
class StepPlan:
    """One optimisation step, resolved: what it updates, with what, from which images.

    Attributes:
        name: the step's recipe name.
        networks: the networks it updates.
        optimizer: the optimizer plugin and args (its ``params`` are injected).
        terms: term name -> :class:`Term`, active terms only, in recipe order.
        images: every image the step reads, inputs before outputs.
        fresh: images the step computes with gradients.
        keep_graph: images not fresh here but computed with gradients for a later step.
        every: runs on iterations ``every - 1, 2 * every - 1, ...`` (0-based).
        repeat: times per iteration it runs.
        groups: network or loss term -> optimizer args of its own parameter group (e.g. a lower lr).
        share: the earlier step whose optimizer (and its state, and its LR schedule) this step uses.
        refresh: images whose networks an earlier step of the iteration updated are made anew.
    """

    name: str
    networks: tuple[str, ...]
    optimizer: Spec
    terms: Mapping[str, Term]
    images: tuple[str, ...]
    fresh: frozenset[str]
    keep_graph: frozenset[str] = frozenset()
    every: int = 1
    repeat: int = 1
    groups: Mapping[str, Mapping] = field(default_factory=lambda: MappingProxyType({}))
    share: str | None = None
    refresh: bool = False


def resolve_term(sname: str, tname: str, term: DictConfig, step: DictConfig, registry: Registry | None = None) -> Term:
    """A recipe loss term as a :class:`Term` (its side decided by :func:`term_side`; what else its
    loss reads, when a ``registry`` knows its plugin)."""
    adversarial = bool(term.adversarial)
    kind = "adversarial_loss" if adversarial else "gradient_penalty" if term.penalty else "consistency_loss"
    spec = Spec(kind, term.adversarial or term.penalty or term.consistency, MappingProxyType(plugin_args(term.args)),
                f"steps.{sname}.losses.{tname}")
    return Term(sname, tname, spec, parse_scalar(term.weight), term_side(term, step) if adversarial else None,
                term.discriminator, term.real, term.fake, term.pool, term.input, term.target, term.network, term.share,
                term.real_label, term.fake_label, tuple(term.networks), term.every, _reads(registry, spec) if term.consistency else (),
                MappingProxyType({k: MappingProxyType(plugin_args(v)) for k, v in term.discriminator_args.items()}))


def _reads(registry: Registry | None, spec: Spec) -> tuple[str, ...]:
    """What a consistency term's loss reads besides input and target; nothing known when its plugin
    is not installed (a run translated where only its generators' plugins are)."""
    name = registry.current_name(spec.kind, spec.type) if registry is not None else None
    if name is None:
        return ()
    return declared_images(registry.get(spec.kind, name).factory, spec.args)


def make_plan(recipe: DictConfig, graph: ImageGraph | None = None, registry: Registry | None = None) -> list[StepPlan]:
    """One :class:`StepPlan` per recipe step, in recipe order (the recipe must be validated)."""
    graph = graph or ImageGraph(recipe.images)
    plans = []
    for name, step in recipe.steps.items():
        terms = {t: resolve_term(name, t, spec, step, registry) for t, spec in active_terms(step).items()}
        needed = graph.order([img for t in terms.values() for img in t.images])
        optimised = set(step.networks)
        fresh = frozenset(img for img in needed if graph.networks(img) & optimised)
        optimizer = Spec("optimizer", step.optimizer.type, MappingProxyType(plugin_args(step.optimizer.args)),
                         f"steps.{name}.optimizer")
        groups = MappingProxyType({n: MappingProxyType(plugin_args(a)) for n, a in step.optimizer.groups.items()})
        plans.append(StepPlan(name, tuple(step.networks), optimizer, MappingProxyType(terms), tuple(needed), fresh,
                              frozenset(), step.every, step.repeat, groups, step.optimizer.share, step.refresh))
    return [replace(p, keep_graph=_keep_graph(plans, i, graph)) for i, p in enumerate(plans)]


def group_calls(plan: StepPlan, graph: ImageGraph, batched: frozenset[str]) -> tuple[tuple[str, ...], ...]:
    """The step's images grouped into network calls, inputs before outputs.

    The images of one ``batched`` network (a per-sample network, with ``train.batch_passes``) at
    the same depth (steps from the data) that are both fresh or both made without gradients share
    a call, e.g. CycleGAN's ``fake_B = G_AB(real_A)`` and ``idt_B = G_AB(real_B)``; every other
    image is a call of its own, in the recipe's order when no image shares one. (Images kept with
    their graph for later steps never share one: two later steps would backpropagate through one
    graph.)"""
    if not batched & {graph.nodes[n].net for n in plan.images}:
        return tuple((name,) for name in plan.images)  # the recipe's order, as the reference calls
    depth: dict[str, int] = {}
    for name in plan.images:  # inputs before outputs
        depth[name] = 1 + max((depth.get(src, 0) for src in graph.nodes[name].inputs), default=0)
    calls: dict[tuple, list[str]] = {}
    for name in sorted(plan.images, key=depth.__getitem__):  # stable: the recipe's order within a depth
        net = graph.nodes[name].net
        shared = net in batched and name not in plan.keep_graph
        key = (depth[name], net, name in plan.fresh) if shared else (name,)
        calls.setdefault(key, []).append(name)
    return tuple(tuple(names) for names in calls.values())


def _keep_graph(plans: list[StepPlan], i: int, graph: ImageGraph) -> frozenset[str]:
    """Images step ``i`` makes without needing gradients that a later step needs fresh, while no
    step in between (``i`` included) updates a network that made them: made once, with gradients,
    they serve both steps. pix2pix and CUT update the discriminator first, and the reference code
    runs the generator once per iteration for both updates."""
    keep = set()
    for name in set(plans[i].images) - plans[i].fresh:
        for later in plans[i + 1:]:
            if name in later.fresh:
                keep.add(name)
                break
            if graph.networks(name) & set(later.networks):
                break
    return frozenset(keep)


def idle_networks_warning(recipe) -> str | None:
    """One line naming the networks that no step updates (a step deleted with ``steps.X=null``, a
    network left out of every step's ``networks``), else None: they keep their initial or
    ``init_from`` weights. A warning, not a problem: a frozen, pretrained network may be meant.

    Args:
        recipe: a :class:`~unpaired.recipe.resolved.ResolvedRecipe`.
    """
    stepped = {name for step in recipe.steps for name in step.networks}
    idle = [name for name in recipe.networks if name not in stepped]
    if not idle:
        return None
    return (f"networks {', '.join(idle)} are in no step's networks: no optimizer updates them, they keep their "
            "initial (or init_from) weights; add them to a step, or remove them if that is not meant.")
