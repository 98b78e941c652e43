"""Hook specifications: the contract between ``unpaired`` and its plugins.

A plugin is a plain module (or object) with functions marked ``@hookimpl``. Plugins are found
through the ``unpaired`` entry-point group — the built-ins in ``unpaired_plugins`` arrive exactly
the way a third-party package's do — or registered at run time with
:meth:`unpaired.registry.Registry.register_plugin` or a recipe's ``plugins:`` list.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points.unpaired]
    my_losses = "my_package.losses"

and ``my_package/losses.py`` holds::

    from unpaired import Component, hookimpl

    @hookimpl
    def unpaired_components():
        return [Component("consistency_loss", "charbonnier", Charbonnier)]
"""

import pluggy

hookspec = pluggy.HookspecMarker("unpaired")
hookimpl = pluggy.HookimplMarker("unpaired")

#: Component kinds and the interface a component of each kind provides.
KINDS = {
    "generator": "nn.Module mapping images (N, C_in, H, W) in [-1, 1] to (N, C_out, H, W) in [-1, 1]",
    "discriminator": "nn.Module mapping images (N, C, H, W) to a logit map (N, 1, h, w) "
    "or a list of such maps (multi-scale)",
    "adversarial_loss": "unpaired.losses.AdversarialLoss: generator_loss(D, fake) and "
    "discriminator_loss(D, real, fake), both scalar tensors",
    "consistency_loss": "nn.Module: forward(input, target) -> scalar tensor",
    "init": "function(module, gain) initialising a network's weights in place",
    "optimizer": "function(params, **args) -> torch.optim.Optimizer",
    "scheduler": "function(optimizer, **args) -> LR scheduler stepped once per epoch",
    "dataset": "unpaired.data.DomainData: domain(name, split) -> Dataset of (image, name)",
}


@hookspec
def unpaired_components():
    """Return the components this plugin provides.

    Returns:
        An iterable of :class:`unpaired.registry.Component`, each naming its ``kind`` (a key of
        :data:`KINDS`), its ``name`` (what recipes write) and its ``factory`` (a class or function
        whose keyword arguments are the component's recipe ``args``).

    Two plugins providing the same kind and name is an error that names both plugins.
    """
