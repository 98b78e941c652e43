"""What a run asks for: the schema (:mod:`~unpaired.recipe.schema`), loading with ``base:`` chains
and overrides (:mod:`~unpaired.recipe.load`), every problem at once (:mod:`~unpaired.recipe.validate`),
the image graph (:mod:`~unpaired.recipe.graph`), the step plans (:mod:`~unpaired.recipe.plan`), and
the recipe resolved once for every job (:mod:`~unpaired.recipe.resolved`)."""

from unpaired.recipe.load import apply_overrides, find_recipe, from_yaml, load_recipe, to_yaml
from unpaired.recipe.resolved import ResolvedRecipe, resolve
from unpaired.recipe.validate import check, validate

__all__ = ["ResolvedRecipe", "apply_overrides", "check", "find_recipe", "from_yaml", "load_recipe", "resolve",
           "to_yaml", "validate"]
