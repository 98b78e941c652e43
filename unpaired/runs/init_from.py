"""``init_from``: a new run's networks start from another run's weights (only read, never changed)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from torch import Tensor, nn

from unpaired.errors import CheckpointError, RecipeError
from unpaired.runs.rundir import checkpoint


def init_weights(recipe: DictConfig, nets: dict[str, nn.Module]) -> tuple[Path, str, dict[str, dict[str, Tensor]]]:
    """The weights that ``recipe.init_from`` names, checked against the recipe's built networks.

    Args:
        recipe: a recipe whose ``init_from`` is set.
        nets: its networks by name, built (on any device, the meta device included: only the
            names and shapes of their tensors are compared).

    Returns:
        The source checkpoint, the SHA-256 of its weights file, and ``{network: state dict}`` of
        the chosen networks (``init_from.networks``, or every network of the recipe).

    Raises:
        RecipeError: no checkpoint at ``init_from.path``, a weights file whose SHA-256 is not
            ``init_from.sha256``, a chosen network the recipe does not define or the checkpoint
            does not hold, or weights whose names or shapes do not fit (naming the network and
            the shapes).
    """
    spec = recipe.init_from
    try:
        ckpt = checkpoint.latest(Path(spec.path))
        _, weights = checkpoint.load_weights(ckpt)
    except CheckpointError as err:
        raise RecipeError(f"init_from.path: {err}") from err
    sha = checkpoint.file_sha256(ckpt / checkpoint.WEIGHTS)
    if spec.sha256 and spec.sha256 != sha:
        raise RecipeError(f"init_from.sha256: {ckpt / checkpoint.WEIGHTS} has SHA-256 {sha}, not the recorded "
                          f"{spec.sha256} (other weights than the recipe was saved with, or a base recipe's record); "
                          "set init_from.sha256=null to start from these.")
    chosen = list(spec.networks) or list(nets)
    unknown = [n for n in chosen if n not in nets]
    if unknown:
        raise RecipeError(f"init_from.networks: {', '.join(unknown)} not defined in this recipe; its networks are "
                          f"{', '.join(nets)}.")
    absent = [n for n in chosen if n not in weights]
    if absent:
        held = [n for n in weights if n in nets]
        raise RecipeError(f"init_from.networks: {ckpt} holds no weights for {', '.join(absent)}; choose among "
                          f"{', '.join(held) or 'none'} (e.g. init_from.networks=[{','.join(held)}]).")
    for name in chosen:
        mine = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in weights[name].items()}
        bad = next((k for k in dict.fromkeys([*mine, *theirs]) if mine.get(k) != theirs.get(k)), None)
        if bad is not None:
            raise RecipeError(
                f"init_from: network '{name}' does not fit: '{bad}' is {theirs.get(bad, 'absent')} in {ckpt} but "
                f"{mine.get(bad, 'absent')} in this recipe; give networks.{name} the source run's type and args, "
                "or leave it out of init_from.networks."
            )
    return ckpt, sha, {n: weights[n] for n in chosen}
