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

from .graph import ImageGraph
from .recipe import active_terms, term_images, term_side


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


def make_plan(recipe: DictConfig, graph: ImageGraph | None = None) -> list[StepPlan]:
    """One :class:`StepPlan` per recipe step, in recipe order (the recipe must be validated)."""
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
    return [replace(p, keep_graph=_keep_graph(plans, i, graph)) for i, p in enumerate(plans)]


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
