"""A recipe's dataset and its training samples."""

from __future__ import annotations

from omegaconf import DictConfig

from unpaired.data.pairs import UnalignedPairs
from unpaired.plugin.registry import Registry
from unpaired.recipe.load import plugin_args


def build_dataset(recipe: DictConfig, registry: Registry):
    """The recipe's dataset plugin (a :class:`unpaired.data.DomainData`), built with its args.

    Raises:
        RecipeError: unknown dataset or arguments it rejects.
    """
    return registry.create("dataset", recipe.data.dataset, "data.dataset", **plugin_args(recipe.data.args))


def training_pairs(data, seed: int):
    """The training samples of a dataset: its aligned pairs when it has them (``data.aligned``),
    else unaligned pairs of its two domains (:class:`unpaired.data.UnalignedPairs`).

    Raises:
        DataError: a domain is empty or missing.
    """
    if getattr(data, "aligned", False):
        return data.pairs("train", seed)
    return UnalignedPairs(data.domain("A", "train"), data.domain("B", "train"), seed=seed)
