"""unpaired: a pluggable framework for unpaired image-to-image translation.

The package reads in four ideas:

- :mod:`unpaired.registry` — what exists (pluggy plugins register components by kind and name);
- :mod:`unpaired.recipe` — what is asked for (an OmegaConf YAML recipe, validated before training);
- :mod:`unpaired.trainer` — how it runs (a generic multi-network, multi-optimizer loop);
- ``unpaired_plugins`` — the parts (networks, losses, datasets), a catalogue of plugins.
"""

from .errors import CheckpointError, DataError, RecipeError, UnpairedError
from .hookspecs import hookimpl
from .registry import Component, Registry, create, default_registry, list_components

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Component",
    "DataError",
    "RecipeError",
    "Registry",
    "UnpairedError",
    "create",
    "default_registry",
    "hookimpl",
    "list_components",
]
