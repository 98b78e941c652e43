"""unpaired: a pluggable framework for unpaired image-to-image translation.

The package reads in five ideas:

- :mod:`unpaired.registry` — what exists (pluggy plugins register components by kind and name);
- :mod:`unpaired.recipe` — what is asked for (an OmegaConf YAML recipe, validated before training);
- :mod:`unpaired.executor` — one iteration (networks, losses, optimizers of the recipe's steps);
- :mod:`unpaired.trainer` — the loop (epochs, resume, signals) firing events that
  :mod:`unpaired.hooks` and plugins handle (logging, samples, checkpoints, evaluation);
- ``unpaired_plugins`` — the parts (networks, losses, datasets), a catalogue of plugins.

The Python API: :func:`load_recipe`, :func:`check_recipe`, :func:`train`, :class:`Translator`,
:func:`evaluate`, :func:`write_report` (docs/python-api.md, docs/evaluation.md).
"""

from .errors import CheckpointError, DataError, RecipeError, TrainingDiverged, UnpairedError
from .hookspecs import hookimpl
from .registry import Component, Registry, create, default_registry, list_components
from .recipe import load_recipe
from .api import check_recipe, resume, train
from .evaluation import EvalResult, Evaluator
from .evaluation import evaluate_run as evaluate
from .executor import Executor
from .inference import Translator, translate
from .report import write_report
from .trainer import FitResult, Trainer
from .translation import TranslateSummary, translate_folder, translate_split

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Component",
    "DataError",
    "EvalResult",
    "Evaluator",
    "Executor",
    "FitResult",
    "RecipeError",
    "Registry",
    "Trainer",
    "TrainingDiverged",
    "Translator",
    "UnpairedError",
    "check_recipe",
    "create",
    "default_registry",
    "evaluate",
    "hookimpl",
    "list_components",
    "load_recipe",
    "resume",
    "train",
    "translate",
    "translate_folder",
    "translate_split",
    "TranslateSummary",
    "write_report",
]
