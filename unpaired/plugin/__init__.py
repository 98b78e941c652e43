"""What a plugin author imports: the hook specifications (:mod:`~unpaired.plugin.hookspecs`), the
component registry (:mod:`~unpaired.plugin.registry`), the adversarial-loss interface
(:mod:`~unpaired.plugin.losses`), diagnostics (:func:`report`) and a network's layer features
(:mod:`~unpaired.plugin.features`). Importing it loads none of the trainer, evaluation or TensorBoard.

::

    from unpaired.plugin import AdversarialLoss, Component, hookimpl, report
"""

from unpaired.plugin.diagnostics import report
from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.losses import AdversarialLoss
from unpaired.plugin.registry import Component, Registry, Spec

__all__ = ["AdversarialLoss", "Component", "Registry", "Spec", "hookimpl", "report"]
