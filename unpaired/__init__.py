"""unpaired: a pluggable framework for unpaired image-to-image translation.

The package reads in five ideas:

- :mod:`unpaired.registry` — what exists (pluggy plugins register components by kind and name);
- :mod:`unpaired.recipe` — what is asked for (an OmegaConf YAML recipe, validated before training);
- :mod:`unpaired.executor` — one iteration (networks, losses, optimizers of the recipe's steps);
- :mod:`unpaired.trainer` — the loop (epochs, resume, signals) firing events that
  :mod:`unpaired.hooks` and plugins handle (logging, samples, checkpoints, evaluation);
- ``unpaired_plugins`` — the parts (networks, losses, datasets), a catalogue of plugins.

The Python API: :func:`load_recipe`, :func:`check_recipe`, :func:`train`, :class:`Translator`
(docs/python-api.md).
"""

from .errors import CheckpointError, DataError, RecipeError, TrainingDiverged, UnpairedError
from .hookspecs import hookimpl
from .registry import Component, Registry, create, default_registry, list_components
from .recipe import load_recipe
from .api import check_recipe, resume, train
from .executor import Executor
from .inference import Translator, translate
from .trainer import FitResult, Trainer

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Component",
    "DataError",
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
    "hookimpl",
    "list_components",
    "load_recipe",
    "resume",
    "train",
    "translate",
]
