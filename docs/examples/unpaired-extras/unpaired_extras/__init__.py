"""unpaired-extras: example third-party plugins for ``unpaired``.

Registered through the ``unpaired`` entry-point group (see ``pyproject.toml``)::

    [project.entry-points.unpaired]
    extras = "unpaired_extras"

so that, once the package is installed, recipes can name ``charbonnier`` (a consistency loss) and
``tiny_resnet`` (a generator), and ``unpaired plugins`` lists them with this package as provider.
"""

from unpaired import Component, hookimpl

from .losses import CharbonnierLoss
from .networks import TinyResnetGenerator

__version__ = "0.1.0"
__all__ = ["CharbonnierLoss", "TinyResnetGenerator", "unpaired_components"]


@hookimpl
def unpaired_components():
    """The components this package provides: their kind, the name recipes use, the factory."""
    return [
        Component("consistency_loss", "charbonnier", CharbonnierLoss),
        Component("generator", "tiny_resnet", TinyResnetGenerator),
    ]
