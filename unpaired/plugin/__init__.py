"""What a plugin author imports: the hook specifications (:mod:`~unpaired.plugin.hookspecs`), the
component registry (:mod:`~unpaired.plugin.registry`), the adversarial-loss interface
(:mod:`~unpaired.plugin.losses`) and a network's layer features (:mod:`~unpaired.plugin.features`).
Importing it loads none of the trainer, evaluation or TensorBoard."""
