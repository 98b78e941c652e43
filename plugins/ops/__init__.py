"""Graph ops (kind ``graph_op``): values of a recipe's images made by running networks in a loop,
without gradients (:mod:`unpaired.recipe.graph`)."""
