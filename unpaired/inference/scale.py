"""The scale a run was trained at: the resize its data preprocessing applied (not the crop, not the
flip), so that translation can meet it (:class:`unpaired.inference.translator.Translator`).

A model learns features at one scale: Fashion-MNIST's 28-pixel images trained at ``load_size 32``
look 1.14 times larger to it than the raw files, a photo of 1024 pixels is 3.6 times larger than
the 286-pixel images of the reference's ``resize_and_crop``. Translating at the training scale, then
resizing the output back to the input's size, is what the model was trained for.
"""

from __future__ import annotations

from unpaired.data.preprocess import TrainingResize
from unpaired.errors import RecipeError
from unpaired.recipe.resolved import ResolvedRecipe
from unpaired.recipe.validate import default_arg


def training_resize(recipe: ResolvedRecipe) -> TrainingResize | None:
    """The resize of the run's preprocessing, from ``data.args`` and the dataset plugin's defaults
    (its ``preprocess`` argument, or a ``preprocess`` attribute for a plugin with one fixed
    preprocessing); None when the recipe does not say (a plugin that is not installed, or one
    without these arguments): then translation keeps the images' own scale."""
    data = recipe.data
    try:
        factory = recipe.registry.get("dataset", data.dataset).factory
    except RecipeError:
        return None

    def arg(name: str):
        value = data.args.get(name)
        return value if value is not None else default_arg(recipe.registry, "dataset", data.dataset, name)

    preprocess = arg("preprocess") or getattr(factory, "preprocess", None)
    load, crop = arg("load_size"), arg("crop_size")
    if not isinstance(preprocess, str) or load is None or crop is None:
        return None
    try:
        return TrainingResize(preprocess, load, crop)
    except ValueError:
        return None
