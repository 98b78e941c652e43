"""Which forward passes each optimisation step needs, derived from the active loss terms.

A recipe's ``images`` section is a graph (image -> network applied to another image). For each
step, the plan keeps only the images that its active loss terms read, plus their inputs. An image
is *fresh* in a step when a network the step optimises took part in making it: the step computes it
with gradients. Any other image is computed once per iteration and reused detached (e.g. the
discriminator step reuses the generators' fakes, as in Zhu et al.'s reference implementation).
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from .recipe import DATA_IMAGES, active_terms, term_images


@dataclass(frozen=True)
class StepPlan:
    name: str
    networks: tuple[str, ...]
    terms: dict  # term name -> LossTerm (active terms only; plain dataclasses, fast to read)
    images: tuple[str, ...]  # every image the step reads, inputs before outputs
    fresh: frozenset[str]  # images the step computes with gradients


def image_networks(recipe: DictConfig, image: str) -> set[str]:
    """The networks that take part in making ``image`` (empty for data images)."""
    nets = set()
    while image not in DATA_IMAGES:
        spec = recipe.images[image]
        nets.add(spec.net)
        image = spec.input
    return nets


def _with_inputs(recipe: DictConfig, names) -> list[str]:
    ordered: list[str] = []

    def visit(name):
        if name in ordered or name in DATA_IMAGES:
            return
        visit(recipe.images[name].input)
        ordered.append(name)

    for n in names:
        visit(n)
    return ordered


def make_plan(recipe: DictConfig) -> list[StepPlan]:
    """One :class:`StepPlan` per recipe step, in recipe order (the recipe must be validated)."""
    plans = []
    for name, step in recipe.steps.items():
        terms = active_terms(step)
        needed = _with_inputs(recipe, [img for t in terms.values() for img in term_images(t)])
        optimised = set(step.networks)
        fresh = frozenset(img for img in needed if image_networks(recipe, img) & optimised)
        plain = {t: OmegaConf.to_object(spec) for t, spec in terms.items()}
        plans.append(StepPlan(name, tuple(step.networks), plain, tuple(needed), fresh))
    return plans

