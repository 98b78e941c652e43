"""unpaired: a pluggable framework for unpaired image-to-image translation.

The package reads in the order a run flows (docs/architecture.md):

- :mod:`unpaired.plugin` — what exists: the hook specifications, the component registry, the
  interfaces plugins implement (adversarial losses, diagnostics, layer features);
- :mod:`unpaired.recipe` — what is asked for: the YAML schema, loading, validation, the image
  graph and the step plans, resolved once into a :class:`~unpaired.recipe.ResolvedRecipe`;
- :mod:`unpaired.engine` — one iteration: networks, losses, pools, optimizers of the recipe's steps;
- :mod:`unpaired.loop` — the loop: epochs, resume, signals, and the events its handlers act on;
- :mod:`unpaired.data`, :mod:`unpaired.runs`, :mod:`unpaired.inference`,
  :mod:`unpaired.evaluation`, :mod:`unpaired.tools` — datasets, run directories, translation
  and export, scores, and the commands built on them;
- ``unpaired_plugins`` — the parts (networks, losses, datasets), a catalogue of plugins.

The names below are imported on first use (PEP 562), so that a plugin module importing
``unpaired.hookimpl`` loads neither the trainer nor TensorBoard.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API = {
    "CheckpointError": "unpaired.errors",
    "DataError": "unpaired.errors",
    "RecipeError": "unpaired.errors",
    "TrainingDiverged": "unpaired.errors",
    "UnpairedError": "unpaired.errors",
    "hookimpl": "unpaired.plugin.hookspecs",
    "report": "unpaired.plugin.diagnostics",
    "Component": "unpaired.plugin.registry",
    "Registry": "unpaired.plugin.registry",
    "create": "unpaired.plugin.registry",
    "default_registry": "unpaired.plugin.registry",
    "list_components": "unpaired.plugin.registry",
    "load_recipe": "unpaired.recipe.load",
    "check_recipe": "unpaired.api",
    "resume": "unpaired.api",
    "train": "unpaired.api",
    "EvalResult": "unpaired.evaluation.result",
    "Evaluator": "unpaired.evaluation.evaluator",
    "evaluate": "unpaired.evaluation.entry",
    "Executor": "unpaired.engine.executor",
    "Translator": "unpaired.inference.translator",
    "translate": "unpaired.inference.translator",
    "write_report": "unpaired.tools.report",
    "FitResult": "unpaired.loop.trainer",
    "Trainer": "unpaired.loop.trainer",
    "TranslateSummary": "unpaired.inference.batch",
    "translate_folder": "unpaired.inference.batch",
    "translate_split": "unpaired.inference.batch",
}
#: Public names bound to another name in their module.
_RENAMED = {"evaluate": "evaluate_run"}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'unpaired' has no attribute '{name}'")
    value = getattr(importlib.import_module(_API[name]), _RENAMED.get(name, name))
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
