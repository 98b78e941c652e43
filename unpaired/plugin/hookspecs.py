"""Hook specifications: the contract between ``unpaired`` and its plugins.

Two kinds of hooks: :func:`unpaired_components` provides parts (networks, losses, datasets, ...);
the ``unpaired_*`` training events let a plugin act during training (log, save, evaluate, keep an
EMA of a generator...) without touching the loop. The built-in logging, sample grids and
checkpoint cadence are implementations of these events (:mod:`unpaired.hooks`).

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
    "consistency_loss": "nn.Module: forward(input, target, [network, images, batch]) -> scalar tensor; "
    "a constructor or forward parameter named 'network' receives the term's network",
    "init": "function(module, gain) initialising a network's weights in place",
    "optimizer": "function(params, **args) -> torch.optim.Optimizer",
    "scheduler": "function(optimizer, **args) -> LR scheduler stepped once per epoch (or per iteration)",
    "dataset": "unpaired.data.DomainData: domain(name, split) -> Dataset of (image, name)",
    "classifier": "nn.Module: images (N, C, H, W) in [-1, 1] -> logits (N, K); features(x) -> (N, D); "
    "attribute classes (K names); a judge of translations",
    "feature_extractor": "nn.Module: images (N, C, H, W) in [-1, 1] -> features (N, D); the space of FID/KID "
    "and diversity",
    "metric": "factory(**args) -> callable(unpaired.metrics.TranslationSet) -> dict of floats; "
    "optional attributes needs (tuple) and better ({key: 'min'|'max'})",
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


# -- training events --------------------------------------------------------------------------------
# Every event is called on every rank of a distributed run (so a handler may run a collective),
# except unpaired_checkpoint_saved, called where the checkpoint was written (rank 0). A handler
# takes any subset of the arguments, by name. ``trainer`` is the running
# :class:`unpaired.trainer.Trainer`: ``trainer.step`` (iterations done), ``trainer.epoch``
# (epochs done), ``trainer.executor.nets`` (the networks), ``trainer.out_dir``, ``trainer.is_main``.


@hookspec
def unpaired_train_start(trainer):
    """Training is about to start (or resume at ``trainer.step``)."""


@hookspec
def unpaired_after_step(trainer, losses):
    """An iteration has finished; ``trainer.step`` counts it.

    Args:
        losses: term name (``"generators/cycle_A"``) -> unweighted loss, a detached 0-dim tensor on
            the training device (reading it with ``float()`` waits for the device: do it rarely).
            A step that did not run this iteration (``every: k``) is absent.
    """


@hookspec
def unpaired_epoch_end(trainer, epoch):
    """Epoch ``epoch`` (1-based) has finished and the epoch's LR schedules have stepped."""


@hookspec
def unpaired_before_checkpoint(trainer):
    """A checkpoint is about to be written at ``trainer.step`` (on every rank; e.g. flush logs)."""


@hookspec
def unpaired_checkpoint_saved(trainer, path):
    """A checkpoint directory ``path`` has been written completely (on the rank that wrote it)."""


@hookspec
def unpaired_samples_saved(trainer, path, grid):
    """A sample grid was written to ``path`` (main rank); ``grid`` is the image (3, H, W) in [0, 1]."""


@hookspec
def unpaired_evaluate(trainer):
    """Evaluate the networks now (every ``train.eval_every`` iterations and at the end).

    Returns:
        A dict of metric name -> float (merged over all implementations), or None. The results
        go to :func:`unpaired_log` like the losses, under ``eval/<name>``.
    """


@hookspec
def unpaired_log(trainer, record):
    """A log record is ready: ``{"step", "epoch", "time", "<step>/<term>": mean loss, "lr/<step>": lr,
    "eval/<metric>": value, ...}`` (plain floats, already averaged over ranks). Write it where
    you like on ``trainer.is_main`` only."""


@hookspec
def unpaired_train_end(trainer, result):
    """Training has stopped (finished, interrupted or at max_steps); ``result`` is the
    :class:`unpaired.trainer.FitResult` that ``fit()`` returns."""
