"""A recipe's dataset and its training samples."""

from __future__ import annotations

from unpaired.data.pairs import UnalignedPairs
from unpaired.recipe.resolved import ResolvedRecipe, spec


def build_dataset(recipe: ResolvedRecipe):
    """The recipe's dataset plugin (a :class:`unpaired.data.pairs.DomainData`), built with its args.

    Raises:
        RecipeError: unknown dataset or arguments it rejects.
        DataError: the plugin's own check of its files (missing folder, no images).
    """
    return recipe.build(spec("dataset", recipe.data, "data.dataset", key="dataset"))


def training_pairs(data, seed: int):
    """The training samples of a dataset: its aligned pairs when it has them (``data.aligned``),
    else unaligned pairs of its two domains (:class:`unpaired.data.pairs.UnalignedPairs`).

    Raises:
        DataError: a domain is empty or missing.
    """
    if getattr(data, "aligned", False):
        return data.pairs("train", seed)
    return UnalignedPairs(data.domain("A", "train"), data.domain("B", "train"), seed=seed)
