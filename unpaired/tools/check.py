"""``unpaired recipe check``: every problem of a recipe at once, without training.

After the static checks of :func:`unpaired.recipe.validate`, the dataset is opened (its training
folders must exist and hold images), and each network is built and the whole image graph
(:class:`unpaired.graph.ImageGraph`), every loss term included, is run once on the meta device
(shapes only, no memory), which finds size and channel mismatches that only a forward pass
shows — e.g. a U-Net whose down-samplings do not fit the crop size.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from unpaired.data.build import build_dataset, training_pairs
from unpaired.engine.build import build_network
from unpaired.domains import domain_channels
from unpaired.errors import RecipeError, UnpairedError, warn
from unpaired.engine.executor import build_loss, context_names, loss_context
from unpaired.recipe.graph import DATA_IMAGES, ImageGraph
from unpaired.recipe.plan import make_plan
from unpaired.recipe.validate import DOMAIN_OF, default_arg, validate
from unpaired.recipe.load import plugin_args
from unpaired.plugin.registry import Registry, default_registry
from unpaired.runs.init_from import init_weights
from unpaired.engine.schedule import schedule_warning


def _data_shapes(recipe: DictConfig, registry: Registry) -> dict[str, tuple[int, ...]]:
    """Shapes (N, C, H, W) of the data images, from the dataset's args or the plugin defaults."""
    args = plugin_args(recipe.data.args)

    def get(key, fallback):
        value = args.get(key, default_arg(registry, "dataset", recipe.data.dataset, key))
        return fallback if value is None else value

    side = get("crop_size", 256)
    return {k: (recipe.data.batch_size, domain_channels(get("channels", 3), DOMAIN_OF[k]), side, side) for k in DATA_IMAGES}


def check_all(recipe: DictConfig, registry: Registry | None = None) -> list[str]:
    """All problems of ``recipe``: static checks, then a meta-device dry run if those pass, and
    the weights ``init_from`` names (there, and fitting the networks' shapes).

    A ``train.epochs`` that does not fit the LR schedule is printed as a warning (stderr), not
    returned: such a recipe trains (:func:`unpaired.schedule.schedule_warning`)."""
    reg = registry or default_registry()
    problems = validate(recipe, reg)
    if problems:
        return problems
    reg = reg.for_recipe(recipe)
    mismatch = schedule_warning(recipe, reg)  # a warning, not a problem: the recipe can train
    if mismatch:
        warn(mismatch)
    try:  # the data: folders exist and hold images, sizes fit
        data = build_dataset(recipe, reg)
        training_pairs(data, recipe.seed)
    except UnpairedError as err:
        problems.append(str(err))
    if recipe.eval.metrics and not problems:  # the judge's plugins and weights, the test images
        from unpaired.evaluation.evaluator import Evaluator

        try:
            Evaluator(recipe, reg, "cpu", data=data)
        except UnpairedError as err:
            problems.append(str(err))
    shapes = _data_shapes(recipe, reg)
    graph = ImageGraph(recipe.images)
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
        for plan in make_plan(recipe, graph):
            for name in plan.images:
                if name in images:
                    continue
                try:
                    images[name] = graph.make(name, nets, images)
                except (ValueError, RuntimeError, TypeError) as err:
                    sizes = ", ".join(str(tuple(images[i].shape)) for i in graph.nodes[name].inputs)
                    problems.append(f"images.{name}: {graph.nodes[name].describe()} fails on {sizes}: {err}")
                    return problems
            for tname, term in plan.terms.items():
                where = f"steps.{plan.name}.losses.{tname}"
                try:
                    loss = build_loss(reg, term, where, nets)
                    if term.consistency:
                        _run_consistency(loss, term, nets, images)
                    for img in (term.fake, term.real) if term.adversarial else ():
                        if img:
                            nets[term.discriminator](images[img])
                except UnpairedError as err:
                    problems.append(str(err) if str(err).startswith(where) else f"{where}: {err}")
                except Exception as err:  # the loss plugin itself failed: say how
                    problems.append(f"{where}: the loss failed on the dry run: {type(err).__name__}: {err}")
    if recipe.init_from is not None:  # the source's weights: there, and of these networks' shapes
        try:
            init_weights(recipe, nets)
        except RecipeError as err:
            problems.append(str(err))
    return problems


def _run_consistency(loss, term, nets: dict, images: dict) -> None:
    """Call a consistency loss as training does; on real zeros of the same shapes when the loss
    cannot run on the meta device (e.g. kornia's SSIM builds its window on the CPU)."""
    extra = loss_context(context_names(loss), term, nets, images, batch=images)  # no batch yet: the data images
    try:
        loss(images[term.input], images[term.target], **extra)
    except (RuntimeError, NotImplementedError, TypeError):
        if term.network or "images" in extra:
            raise
        with torch.device("cpu"):
            loss = loss.to_empty(device="cpu") if any(p.is_meta for p in loss.parameters()) else loss.to("cpu")
            zeros = [torch.zeros(images[i].shape) for i in (term.input, term.target)]
            loss(*zeros, **extra)
