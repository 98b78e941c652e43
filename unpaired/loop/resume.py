"""Which recipe changes a resumed run can take, and what a resumed run checks of its run directory."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from unpaired.errors import RecipeError, UnpairedError
from unpaired.recipe.load import from_yaml


def _changed(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain containers (a key on one side only too)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in dict.fromkeys([*a, *b]) for k in _changed(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [prefix[:-1]] if a != b else []


def _fixed(key: str) -> bool:
    """Whether a restored run cannot take a change of ``key``: what its weights, optimizer states
    and schedule position were made for."""
    p = key.split(".")
    if p[0] == "networks":
        return len(p) == 2 or p[2] in ("type", "role", "args")
    if p[0] == "steps":  # a parameter group added or removed: the saved optimizer state has other groups
        return len(p) == 2 or p[2] == "networks" or p[2:4] == ["optimizer", "type"] or (
            p[2:4] == ["optimizer", "groups"] and len(p) <= 5)
    # the seed drew the data order, the image pools' choices and every random draw since
    return p[0] in ("images", "init_from", "seed") or key == "train.scheduler.interval"


def fixed_changes(saved: DictConfig, recipe: DictConfig) -> list[str]:
    """The keys ``recipe`` changes from a run's ``saved`` recipe that a resumed run cannot take:
    a network's ``type``, ``role`` or ``args`` (or a network added or removed), ``images``, a step
    added or removed or its ``networks``, ``optimizer.type`` or a parameter group added or removed, ``train.scheduler.interval``,
    ``init_from`` and ``seed``. Everything else (optimizer args, the schedule, epochs, data, loss
    weights, a group's args, ...) applies on resume."""
    return [k for k in changes(saved, recipe) if _fixed(k)]


def changes(a: DictConfig, b: DictConfig) -> list[str]:
    """The dotted keys whose values differ between two recipes."""
    return _changed(*(OmegaConf.to_container(r, resolve=True) for r in (a, b)))


def edited_recipe(recipe_file: Path, saved: DictConfig, recipe: DictConfig) -> list[str]:
    """The keys of an edit of a run directory's ``recipe.yaml`` that a resume would not apply: where
    the file differs from the checkpoint's recipe (``saved``) and the overrides do not give it the
    file's value (``recipe``: the checkpoint's with the overrides). A missing or unreadable file
    counts as no edit (the next checkpoint writes it again).

    Raises:
        RecipeError: the file no longer parses (code ``edited-recipe``)."""
    try:
        written = from_yaml(recipe_file.read_text())
    except OSError:
        return []
    except (UnpairedError, yaml.YAMLError) as err:  # an edit that broke the file
        raise RecipeError(f"{recipe_file} was edited since its checkpoint and no longer reads as YAML "
                          f"({str(err).splitlines()[0]}); resume trains the checkpoint's recipe with key=value "
                          "overrides: undo the edit (or delete the file, which the next checkpoint writes again).",
                          key=str(recipe_file), code="edited-recipe") from err
    edits = changes(written, saved)
    return [k for k in changes(written, recipe) if k in edits] if edits else []
