"""What a run asks for: the schema (:mod:`~unpaired.recipe.schema`), loading with ``base:`` chains
and overrides (:mod:`~unpaired.recipe.load`), every problem at once (:mod:`~unpaired.recipe.validate`),
the image graph (:mod:`~unpaired.recipe.graph`) and the step plans (:mod:`~unpaired.recipe.plan`)."""
