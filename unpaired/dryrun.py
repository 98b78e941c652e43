"""``unpaired recipe check``: every problem of a recipe at once, without training.

After the static checks of :func:`unpaired.recipe.validate`, the dataset is opened (its training
folders must exist and hold images), and each network is built and the whole
image graph, every loss term included, is run once on the meta device (shapes only, no memory),
which finds size and channel mismatches that only a forward pass shows.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from .build import build_dataset, build_network
from .errors import UnpairedError
from .data import domain_channels
from .plan import make_plan
from .recipe import DATA_IMAGES, DOMAIN_OF, default_arg, plugin_args, validate
from .registry import Registry, default_registry


def _data_shapes(recipe: DictConfig, registry: Registry) -> dict[str, tuple[int, ...]]:
    """Shapes (N, C, H, W) of the data images, from the dataset's args or the plugin defaults."""
    args = plugin_args(recipe.data.args)

    def get(key, fallback):
        value = args.get(key, default_arg(registry, "dataset", recipe.data.dataset, key))
        return fallback if value is None else value

    side = get("crop_size", 256)
    return {k: (recipe.data.batch_size, domain_channels(get("channels", 3), DOMAIN_OF[k]), side, side) for k in DATA_IMAGES}


def check_all(recipe: DictConfig, registry: Registry | None = None) -> list[str]:
    """All problems of ``recipe``: static checks, then a meta-device dry run if those pass."""
    reg = registry or default_registry()
    problems = validate(recipe, reg)
    if problems:
        return problems
    try:  # the data: folders exist and hold images, sizes fit
        data = build_dataset(recipe, reg)
        for domain in "AB":
            data.domain(domain, "train")
    except UnpairedError as err:
        problems.append(str(err))
    shapes = _data_shapes(recipe, reg)
    with torch.device("meta"):
        nets = {}
        for name in recipe.networks:
            try:
                nets[name] = build_network(recipe, name, reg, init=False)
            except (UnpairedError, ValueError, RuntimeError, TypeError) as err:
                problems.append(f"networks.{name}: cannot be built: {err}")
        if problems:
            return problems
        images = {k: torch.empty(shape) for k, shape in shapes.items()}
        for plan in make_plan(recipe):
            for name in plan.images:
                if name in images:
                    continue
                spec = recipe.images[name]
                try:
                    images[name] = nets[spec.net](images[spec.input])
                except (ValueError, RuntimeError, TypeError) as err:
                    problems.append(f"images.{name}: {spec.net}({spec.input}) fails on {tuple(images[spec.input].shape)}: {err}")
                    return problems
            for tname, term in plan.terms.items():
                where = f"steps.{plan.name}.losses.{tname}"
                kind = "adversarial_loss" if term.adversarial else "consistency_loss"
                try:
                    loss = reg.create(kind, term.adversarial or term.consistency, where, **plugin_args(term.args))
                    if term.consistency:
                        loss(images[term.input], images[term.target])
                    for img in (term.fake, term.real) if term.adversarial else ():
                        if img:
                            nets[term.discriminator](images[img])
                except (UnpairedError, ValueError, RuntimeError, TypeError) as err:
                    problems.append(f"{where}: {err}")
    return problems
