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
        ``{network: state dict}`` of the chosen networks (``init_from.networks``, or the networks
        ``init_from.map`` names, or every network of the recipe), each from the checkpoint's
        network of the same name or the one ``init_from.map`` gives it.

    Raises:
        RecipeError: a chosen or mapped network the recipe does not define or the checkpoint does
            not hold, a mapped network left out of ``init_from.networks``, or weights whose names
            or shapes do not fit (naming the network and the shapes).
    """
    init = recipe.init_from
    _, weights = checkpoint.load_weights(init.checkpoint)
    unknown = [n for n in dict.fromkeys([*init.networks, *init.sources]) if n not in nets]
    if unknown:
        raise RecipeError(f"init_from.{'map' if set(unknown) <= set(init.sources) - set(init.networks) else 'networks'}: "
                          f"{', '.join(unknown)} not defined in this recipe; its networks are "
                          f"{', '.join(nets)}.", key="init_from.networks", code="unknown-network")
    left_out = [n for n in init.sources if n not in init.networks]
    if left_out:
        raise RecipeError(f"init_from.map: {', '.join(left_out)} mapped but left out of init_from.networks "
                          f"({', '.join(init.networks)}); add them there or drop them from the map.",
                          key="init_from.map", code="not-chosen")
    absent = [n for n in init.networks if init.source(n) not in weights and nets[n].state_dict()]
    if absent:
        held = [n for n in weights if n in nets]
        named = ", ".join(n if init.source(n) == n else f"{n} (from {init.source(n)})" for n in absent)
        hint = (f"choose among {', '.join(held)} (e.g. init_from.networks=[{','.join(held)}])" if held else
                f"it holds {', '.join(weights) or 'none'}: map a network to one of these with init_from.map")
        raise RecipeError(f"init_from.networks: {init.checkpoint} holds no weights for {named}; {hint}.",
                          key="init_from.networks", code="absent")
    for name in init.networks:
        source = init.source(name)
        mine = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in weights.get(source, {}).items()}
        bad = next((k for k in dict.fromkeys([*mine, *theirs]) if mine.get(k) != theirs.get(k)), None)
        if bad is not None:
            raise RecipeError(
                f"init_from: network '{name}' does not fit: '{bad}' is {theirs.get(bad, 'absent')} in "
                f"{init.checkpoint}{'' if source == name else f' ({source})'} but {mine.get(bad, 'absent')} in this recipe; give networks.{name} the "
                "source run's type and args, or leave it out of init_from.networks.", key="init_from", code="does-not-fit")
    return {n: weights.get(init.source(n), {}) for n in init.networks}
