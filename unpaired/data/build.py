"""A recipe's dataset and its training samples."""

from __future__ import annotations

from unpaired.data.pairs import UnalignedPairs
from unpaired.errors import DataError
from unpaired.recipe.resolved import ResolvedRecipe, spec


def build_dataset(recipe: ResolvedRecipe):
    """The recipe's dataset plugin (a :class:`unpaired.data.pairs.DomainData`), built with its args.

    Raises:
        RecipeError: unknown dataset or arguments it rejects.
        DataError: the plugin's own check of its files (missing folder, no images).
    """
    return recipe.build(spec("dataset", recipe.data, "data.dataset", key="dataset"))


def training_pairs(data, seed: int, second_sample: bool = False):
    """The training samples of a dataset: its own when it has ``training_samples(seed)`` (a
    multi-domain dataset's dicts of the values it ``provides``), its aligned pairs when it has them
    (``data.aligned``), else unaligned pairs of its two domains (:class:`unpaired.data.pairs.UnalignedPairs`).

    ``second_sample``: unaligned pairs also give ``real_A2`` and ``real_B2``, a second random
    image of each domain.

    Raises:
        DataError: a domain is empty or missing; a second sample of aligned or multi-domain data.
    """
    if second_sample and (hasattr(data, "training_samples") or getattr(data, "aligned", False)):
        raise DataError("data.second_sample: a second random image of each domain is for unpaired two-domain data "
                        "(a multi-domain dataset gives ref and ref2 already).", key="data.second_sample",
                        code="no-second-sample")
    if hasattr(data, "training_samples"):
        return data.training_samples(seed)
    if getattr(data, "aligned", False):
        return data.pairs("train", seed)
    return UnalignedPairs(data.domain("A", "train"), data.domain("B", "train"), seed=seed, second_sample=second_sample)
