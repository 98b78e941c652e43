"""Which forward passes each optimisation step needs, derived from the active loss terms.

For each step, the plan keeps only the images that its active loss terms read, plus their inputs
(:meth:`unpaired.graph.ImageGraph.order`). An image is *fresh* in a step when a network the step
optimises took part in making it: the step computes it with gradients. Any other image is
computed once per iteration and reused detached (e.g. the discriminator step reuses the
generators' fakes, as in Zhu et al.'s reference implementation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from omegaconf import DictConfig, OmegaConf

from unpaired.recipe.graph import ImageGraph
from unpaired.recipe.validate import active_terms, term_images, term_side


@dataclass(frozen=True)
class StepPlan:
    name: str
    networks: tuple[str, ...]
    terms: dict  # term name -> LossTerm (active terms only; plain dataclasses, fast to read)
    sides: dict  # adversarial term name -> "generator" | "discriminator"
    images: tuple[str, ...]  # every image the step reads, inputs before outputs
    fresh: frozenset[str]  # images the step computes with gradients
    keep_graph: frozenset[str] = frozenset()  # not fresh here, but computed with gradients for a later step
    every: int = 1  # runs on iterations 0, every, 2 * every, ...
    repeat: int = 1  # times per iteration it runs
    calls: tuple[tuple[str, ...], ...] = ()  # ``images`` grouped into network calls, in order (see _calls)


def make_plan(recipe: DictConfig, graph: ImageGraph | None = None, batched: frozenset[str] = frozenset()) -> list[StepPlan]:
    """One :class:`StepPlan` per recipe step, in recipe order (the recipe must be validated).

    ``batched`` names the networks whose passes may share one call (per-sample networks, with
    ``train.batch_passes``)."""
    graph = graph or ImageGraph(recipe.images)
    plans = []
    for name, step in recipe.steps.items():
        terms = active_terms(step)
        needed = graph.order([img for t in terms.values() for img in term_images(t)])
        optimised = set(step.networks)
        fresh = frozenset(img for img in needed if graph.networks(img) & optimised)
        plain = {t: OmegaConf.to_object(spec) for t, spec in terms.items()}
        sides = {t: term_side(spec, step) for t, spec in terms.items() if spec.adversarial}
        plans.append(StepPlan(name, tuple(step.networks), plain, sides, tuple(needed), fresh, frozenset(),
                              step.every, step.repeat))
    plans = [replace(p, keep_graph=_keep_graph(plans, i, graph)) for i, p in enumerate(plans)]
    return [replace(p, calls=_calls(p, graph, batched)) for p in plans]


def _calls(plan: StepPlan, graph: ImageGraph, batched: frozenset[str]) -> tuple[tuple[str, ...], ...]:
    """The step's images grouped into network calls, inputs before outputs: the images of one
    ``batched`` network at the same depth (steps from the data) that are both fresh or both made
    without gradients share a call, e.g. CycleGAN's ``fake_B = G_AB(real_A)`` and ``idt_B =
    G_AB(real_B)``; every other image is a call of its own, in the recipe's order when no image
    shares one. (Images kept with their graph for later steps never share one: two later steps
    would backpropagate through one graph.)"""
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
