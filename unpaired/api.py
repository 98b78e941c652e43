"""The Python API in four calls: load a recipe, check it, train it, translate with the result.

::

    import unpaired

    recipe = unpaired.load_recipe({"base": "cyclegan-fashion", "train": {"epochs": 1}})
    assert unpaired.check_recipe(recipe) == []
    result = unpaired.train(recipe, out_dir="runs/mine")           # FitResult: history, out_dir
    to_boot = unpaired.Translator(result.out_dir, "AtoB")           # reusable
    boots = to_boot(sneakers)                                      # (N, 1, H, W) in [-1, 1]

See docs/python-api.md.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from unpaired.errors import Problem
from unpaired.tools.check import check_all
from unpaired.plugin.registry import Registry, default_registry
from unpaired.loop.trainer import FitResult, Trainer


def check_recipe(recipe: DictConfig, registry: Registry | None = None) -> list[Problem]:
    """Every problem of a recipe, as ``unpaired recipe check`` finds them (static checks, the
    data opened, the executor's iteration on the meta device); an empty list when it is ready to
    train. Each problem is a ``str`` with the fields ``key`` (the recipe key) and ``code``."""
    return check_all(recipe, registry or default_registry())


def train(recipe: DictConfig, out_dir: str | Path | None = None, hooks=(), registry: Registry | None = None) -> FitResult:
    """Train a recipe into a new run directory; return its :class:`~unpaired.loop.trainer.FitResult`
    (``history``: every log record; ``out_dir``; ``iteration``, ``epoch``).

    Args:
        hooks: event handlers for this run (objects with ``@unpaired.hookimpl`` methods named
            after the events of :mod:`unpaired.plugin.hookspecs`, e.g. ``unpaired_after_step``).

    Raises:
        RecipeError, DataError, CheckpointError: as :class:`~unpaired.loop.trainer.Trainer` and its ``fit``.
    """
    return Trainer(recipe, out_dir=out_dir, registry=registry, hooks=hooks).fit()


def resume(run_dir: str | Path, overrides=(), hooks=(), out_dir: str | Path | None = None) -> FitResult:
    """Continue a run from its latest checkpoint (``overrides`` such as ``["train.epochs=30"]``);
    another ``out_dir`` forks it there (see :meth:`unpaired.loop.trainer.Trainer.resume`)."""
    return Trainer.resume(run_dir, overrides, hooks=hooks, out_dir=out_dir).fit()
