"""``init_from``: a new run's networks start from another run's weights (only read, never changed).

:func:`unpaired.recipe.resolved.resolve` settles which checkpoint (and the SHA-256 of its weights);
here the weights are read and checked against the networks they will go into.
"""

from __future__ import annotations

from torch import Tensor, nn

from unpaired.errors import RecipeError
from unpaired.recipe.resolved import ResolvedRecipe
from unpaired.runs import checkpoint


def init_weights(recipe: ResolvedRecipe, nets: dict[str, nn.Module]) -> dict[str, dict[str, Tensor]]:
    """The weights of the networks ``recipe.init_from`` takes, checked against the built networks.

    Args:
        recipe: a resolved recipe whose ``init_from`` is set.
        nets: its networks by name, built (on any device, the meta device included: only the
            names and shapes of their tensors are compared).

    Returns:
        ``{network: state dict}`` of the chosen networks (``init_from.networks``, or every
        network of the recipe).

    Raises:
        RecipeError: a chosen network the recipe does not define or the checkpoint does not hold,
            or weights whose names or shapes do not fit (naming the network and the shapes).
    """
    init = recipe.init_from
    _, weights = checkpoint.load_weights(init.checkpoint)
    unknown = [n for n in init.networks if n not in nets]
    if unknown:
        raise RecipeError(f"init_from.networks: {', '.join(unknown)} not defined in this recipe; its networks are "
                          f"{', '.join(nets)}.", key="init_from.networks", code="unknown-network")
    absent = [n for n in init.networks if n not in weights and nets[n].state_dict()]
    if absent:
        held = [n for n in weights if n in nets]
        raise RecipeError(f"init_from.networks: {init.checkpoint} holds no weights for {', '.join(absent)}; choose "
                          f"among {', '.join(held) or 'none'} (e.g. init_from.networks=[{','.join(held)}]).",
                          key="init_from.networks", code="absent")
    for name in init.networks:
        mine = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in weights.get(name, {}).items()}
        bad = next((k for k in dict.fromkeys([*mine, *theirs]) if mine.get(k) != theirs.get(k)), None)
        if bad is not None:
            raise RecipeError(
                f"init_from: network '{name}' does not fit: '{bad}' is {theirs.get(bad, 'absent')} in "
                f"{init.checkpoint} but {mine.get(bad, 'absent')} in this recipe; give networks.{name} the source "
                "run's type and args, or leave it out of init_from.networks.", key="init_from", code="does-not-fit")
    return {n: weights.get(n, {}) for n in init.networks}
