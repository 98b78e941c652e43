"""Hook specifications: the contract between ``unpaired`` and its plugins.

Two kinds of hooks: :func:`unpaired_components` provides parts (networks, losses, datasets, ...);
the ``unpaired_*`` training events let a plugin act during training (log, save, evaluate, keep an
EMA of a generator...) without touching the loop. The built-in logging, sample grids and
checkpoint cadence are implementations of these events (:mod:`unpaired.loop.hooks`).

A plugin is a plain module (or object) with functions marked ``@hookimpl``. Plugins are found
through the ``unpaired`` entry-point group — the built-ins in ``unpaired_plugins`` arrive exactly
the way a third-party package's do — or registered at run time with
:meth:`unpaired.plugin.registry.Registry.register_plugin` or a recipe's ``plugins:`` list. A recipe's
``handlers:`` section builds event handlers (components of kind ``handler``) with arguments.

Handlers may own state: what :func:`unpaired_state_dict` returns goes into every checkpoint and
comes back through :func:`unpaired_load_state_dict` on resume, keyed by the handler (its recipe
entry's name, its ``state_key`` attribute, or its module or class name), as Lightning callbacks'
``state_dict`` and mmengine's ``before_save_checkpoint``/``after_load_checkpoint``. Networks a
handler keeps (an EMA's averages) are offered to inference through :func:`unpaired_weight_sets`.

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
    "adversarial_loss": "unpaired.plugin.losses.AdversarialLoss: generator_loss(D, fake) and "
    "discriminator_loss(D, real, fake), both scalar tensors",
    "consistency_loss": "nn.Module: forward(input, target, [network, images, batch]) -> scalar tensor; "
    "a constructor or forward parameter named 'network' receives the term's network",
    "gradient_penalty": "nn.Module: forward(discriminator, real, fake) -> scalar tensor; discriminator a function "
    "of the image (its label bound), real and fake detached fp32 images (fake None unless the term names one)",
    "init": "function(module, gain) initialising a network's weights in place",
    "optimizer": "function(params, **args) -> torch.optim.Optimizer",
    "scheduler": "function(optimizer, **args) -> LR scheduler stepped once per epoch (or per iteration)",
    "dataset": "unpaired.data.pairs.DomainData: domain(name, split) -> Dataset of (image, name)",
    "classifier": "nn.Module: images (N, C, H, W) in [-1, 1] -> logits (N, K); features(x) -> (N, D); "
    "attribute classes (K names); a judge of translations",
    "feature_extractor": "nn.Module: images (N, C, H, W) in [-1, 1] -> features (N, D); the space of FID/KID "
    "and diversity",
    "metric": "factory(**args) -> callable(unpaired.evaluation.metrics.TranslationSet) -> dict of floats; "
    "optional attributes needs (tuple) and better ({key: 'min'|'max'})",
    "handler": "factory(**args) -> an object with @hookimpl methods for the training events; built from a "
    "recipe's handlers: section",
    "graph_op": "factory(**args) -> callable(*inputs, networks={name: module}, generator=torch.Generator) -> "
    "tensor; an op node of a recipe's images, run without gradients (UNSB's roll-out)",
    "augmentation": "factory(**args) -> callable(images (N, C, H, W), generator=torch.Generator) -> images, "
    "differentiable; every input of a discriminator whose network sets augment (DiffAugment)",
}


@hookspec
def unpaired_components():
    """Return the components this plugin provides.

    Returns:
        An iterable of :class:`unpaired.plugin.registry.Component`, each naming its ``kind`` (a key of
        :data:`KINDS`), its ``name`` (what recipes write) and its ``factory`` (a class or function
        whose keyword arguments are the component's recipe ``args``).

    Two plugins providing the same kind and name is an error that names both plugins, raised
    when a recipe uses that name.
    """


@hookspec
def unpaired_component_kinds():
    """Return the component kinds this plugin adds (e.g. an ``augmentation`` kind of its own).

    Returns:
        A dict of kind -> a one-line description of the interface its components provide.
        Kinds already known keep their description.
    """


# -- training events --------------------------------------------------------------------------------
# Every event is called on every rank of a distributed run (so a handler may run a collective),
# except unpaired_checkpoint_saved, called where the checkpoint was written (rank 0). A handler
# takes any subset of the arguments, by name. ``trainer`` is the running
# :class:`unpaired.loop.trainer.Trainer`: ``trainer.iteration`` (iterations done),
# ``trainer.epoch`` (epochs done), ``trainer.nets`` (the networks), ``trainer.run`` (the run
# directory, :class:`unpaired.runs.rundir.RunDir`), ``trainer.is_main``. An iteration runs
# every due step of the recipe (``steps:``, each one optimizer update) on one batch.


@hookspec
def unpaired_train_start(trainer):
    """Training is about to start (or resume at ``trainer.iteration``)."""


@hookspec
def unpaired_after_step(trainer, losses):
    """An iteration has finished; ``trainer.iteration`` counts it. Checkpoints due at this
    iteration are written after every handler has run (an EMA updated here is in them).

    Args:
        losses: term name (``"generators/cycle_A"``) -> unweighted loss, a detached 0-dim tensor on
            the training device (reading it with ``float()`` waits for the device: do it rarely),
            and the terms' reported diagnostics (``"discriminators/D_A/D_real"``,
            :func:`unpaired.plugin.diagnostics.report`). A step that did not run this
            iteration (``every: k``) is absent.
    """


@hookspec
def unpaired_epoch_end(trainer, epoch):
    """Epoch ``epoch`` (1-based) has finished and the epoch's LR schedules have stepped."""


@hookspec
def unpaired_before_checkpoint(trainer):
    """A checkpoint is about to be written at ``trainer.iteration`` (on every rank; e.g. flush logs)."""


@hookspec
def unpaired_checkpoint_saved(trainer, path):
    """A checkpoint directory ``path`` has been written completely (on the rank that wrote it)."""


@hookspec
def unpaired_samples_saved(trainer, path, grid):
    """A sample grid was written to ``path`` (main rank); ``grid`` is the image (3, H, W) in [0, 1]."""


@hookspec
def unpaired_evaluate(trainer):
    """Evaluate the networks now (every ``train.eval_every`` epochs and at the end).

    Returns:
        A dict of metric name -> float (merged over all implementations), or None. The results
        go to :func:`unpaired_log` like the losses, under ``eval/<name>``.
    """


@hookspec
def unpaired_log(trainer, record):
    """A log record is ready: ``{"iteration", "epoch", "time", "<step>/<term>": mean loss,
    "<step>/<term>/<name>": mean diagnostic, "lr/<step>": lr, "eval/<metric>": value, ...}`` (plain
    floats, already averaged over ranks). Write it where you like on ``trainer.is_main`` only."""


@hookspec
def unpaired_train_end(trainer, result):
    """Training has stopped (finished, interrupted or at max_iterations); ``result`` is the
    :class:`unpaired.loop.trainer.FitResult` that ``fit()`` returns."""


# -- handlers' state ---------------------------------------------------------------------------------


@hookspec
def unpaired_state_dict(trainer):
    """The handler's state for the checkpoint being written (on the writing rank).

    Returns:
        Plain data and tensors (``torch.load(weights_only=True)`` must read it back), or None. Each
        handler's state is kept under its key; called on each handler separately.
    """


@hookspec
def unpaired_load_state_dict(trainer, state):
    """Restore the state :func:`unpaired_state_dict` returned, on every rank, when a run resumes
    (before ``unpaired_train_start``). Not called when the checkpoint holds nothing for this handler."""


@hookspec
def unpaired_weight_sets(trainer):
    """Networks this handler keeps that inference may use instead of the trained ones (an EMA).

    Returns:
        ``{network name: nn.Module}`` or None. They are saved in each checkpoint as
        ``weights.<key>.safetensors`` (the handler's key); ``unpaired translate``, ``evaluate`` and
        ``export`` use them with ``--weights <key>``.
    """
