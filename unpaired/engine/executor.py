"""The executor: one training iteration of a recipe, and the state it owns.

It builds what the resolved recipe names — networks, loss modules (with the context they ask for),
image pools, one optimizer and LR schedule per step, gradient scalers — and runs the recipe's steps
on a batch. It knows nothing of epochs, data loading, run directories or logging: that is the
loop's (:mod:`unpaired.loop.trainer`), so a benchmark or a notebook can drive it directly::

    ex = Executor(load_recipe("cyclegan-fashion"))
    losses = ex.run_iteration({"real_A": a, "real_B": b})     # (N, C, H, W) in [-1, 1]

An iteration runs each due step of the recipe: it freezes every network the step does not
optimise, computes the images its loss terms need (:mod:`unpaired.recipe.plan`), sums the weighted
terms and takes one optimizer step. A loss declares what it needs beyond ``input`` and ``target``
by parameter name: ``network`` (the term's ``network:``, in the constructor and/or ``forward``),
``images`` (every image of the step by name) and ``batch`` (the iteration's data). A loss with
trainable parameters (e.g. PatchNCE's projection head) is optimised by the step that uses it and
saved in checkpoints. What a loss reports (:func:`unpaired.plugin.diagnostics.report`) comes back
with the losses.

``recipe check`` runs this same code on the meta device (:mod:`unpaired.tools.check`).
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from unpaired.engine.build import build_loss, build_network, context_names, loss_context, trainable
from unpaired.engine.pool import ImagePool
from unpaired.engine.schedule import advance
from unpaired.errors import CheckpointError, RecipeError, TrainingDiverged, warn
from unpaired.plugin.diagnostics import collecting
from unpaired.plugin.registry import Registry
from unpaired.recipe.plan import StepPlan, Term, group_calls
from unpaired.recipe.resolved import ResolvedRecipe, resolve
from unpaired.runtime import distributed
from unpaired.runtime.device import compile_cache, resolve_precision

#: Param-group keys that choose how an optimizer computes, not what: a resume keeps the restored ones.
IMPLEMENTATION = ("params", "fused", "foreach", "capturable", "differentiable")


def _group_args(plan: StepPlan) -> list[dict]:
    """The args of each param group of a step's optimizer, in its order: the step's own group
    (``optimizer.args``), then each of ``optimizer.groups`` (the step's args, its own on top)."""
    return [dict(plan.optimizer.args), *({**plan.optimizer.args, **g} for g in plan.groups.values())]


class Executor:
    """Run the steps of a recipe on batches, owning networks, losses, pools and optimizers.

    Args:
        recipe: a :class:`~unpaired.recipe.resolved.ResolvedRecipe`, or a loaded recipe (resolved
            here, which checks it).
        registry: component registry, for a recipe not yet resolved (default: the entry points').
        device: where to train (default: the recipe's ``device``); ``"meta"`` for the dry run.
        dist: this process's place in a ``torchrun`` job (default: a single process).

    Raises:
        RecipeError: the recipe has problems (all listed), or asks for an unavailable device.
    """

    def __init__(self, recipe: DictConfig | ResolvedRecipe, registry: Registry | None = None,
                 device: str | torch.device | None = None, dist: distributed.DistInfo | None = None):
        self.dist = dist or distributed.DistInfo()
        self.recipe = resolve(recipe, registry, local_rank=self.dist.local_rank)
        self.registry = self.recipe.registry
        self.device = torch.device(device) if device is not None else self.recipe.device
        tr = self.recipe.train
        if tr.deterministic:
            # cuBLAS is deterministic only with a fixed workspace, read when its first handle is made
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)

        torch.manual_seed(self.recipe.seed)  # the same initial weights on every rank
        self.nets = {name: build_network(self.recipe, net).to(self.device) for name, net in self.recipe.networks.items()}
        self.memory_format = torch.channels_last if tr.channels_last else torch.contiguous_format
        for net in self.nets.values():
            net.to(memory_format=self.memory_format)
        if self.dist.enabled:
            distributed.broadcast_networks(self.nets)
        if tr.compile:
            compile_cache()
        # static shapes: batched passes call a network at two batch sizes, which would otherwise make
        # dynamo recompile it with symbolic sizes (slower kernels, and an inductor error on some shapes)
        self.fwd = {n: torch.compile(net, dynamic=False) if tr.compile else net for n, net in self.nets.items()}
        self.graph = self.recipe.graph
        # the random nodes' draws: on the CPU (the same on every device), another stream per rank
        self.generator = torch.Generator().manual_seed(self.recipe.seed * 1_000_003 + self.dist.rank)
        self.augments = {name: self.recipe.build(net.augment) for name, net in self.recipe.networks.items()
                         if net.augment is not None}
        # the networks as evaluation and sample grids call them: no augmentation, modules (train/eval)
        self.unaugmented = dict(self.fwd)
        for name, augment in self.augments.items():  # a discriminator that sees every input augmented
            self.fwd[name] = _Augmented(self.fwd[name], augment, self.generator)
        self.epochs_done = 0  # epochs completed: the unit of ``per: epoch`` weight schedules
        self.iteration = 0  # the iteration being run: the unit of weight schedules
        self.plans: tuple[StepPlan, ...] = self.recipe.steps
        batched = frozenset(n for n, net in self.nets.items() if tr.batch_passes and getattr(net, "per_sample", False))
        self.calls = {p.name: group_calls(p, self.graph, batched) for p in self.plans}

        self.losses: dict[tuple[str, str], nn.Module] = {}
        self.pools: dict[str, ImagePool] = {}
        for plan in self.plans:
            for tname, term in sorted(plan.terms.items(), key=lambda kv: kv[1].share is not None):
                if term.share:
                    self.losses[plan.name, tname] = self.losses[plan.name, term.share]
                    continue
                self.losses[plan.name, tname] = build_loss(self.recipe, term, self.nets).to(self.device)
                if term.adversarial and term.side == "discriminator" and term.pool:
                    self.pools[f"{plan.name}.{tname}"] = ImagePool(term.pool, seed=self.recipe.seed + self.dist.rank)
        self.context = {key: context_names(loss) for key, loss in self.losses.items()}
        if self.dist.enabled:  # loss parameters (e.g. a projection head) start equal on every rank too
            distributed.broadcast_networks({f"{s}:{t}": m for (s, t), m in self.losses.items()})

        self.optimizers, self.schedulers = {}, {}
        for plan in self.plans:
            if plan.share:  # one optimizer for both steps, as StarGAN v2 steps G's Adam twice per iteration
                self.optimizers[plan.name] = self.optimizers[plan.share]
                self.schedulers[plan.name] = self.schedulers[plan.share]
                continue
            # a network with optimizer args of its own (StarGAN v2's mapping network: lr 1e-6), or a loss
            # term's head (DCLGAN's PatchNCE heads: their own Adam at PyTorch's defaults)
            groups = {n: list(dict.fromkeys(self._group_parameters(plan, n))) for n in plan.groups}
            grouped = {id(p) for ps in groups.values() for p in ps}  # a term sharing a grouped head: in its group
            params = [p for n in plan.networks for p in self.nets[n].parameters()]
            params += [p for t in plan.terms for p in self.losses[plan.name, t].parameters() if p.requires_grad]
            params = [p for p in dict.fromkeys(params) if id(p) not in grouped]
            if plan.groups:
                params = [{"params": params}, *({"params": groups[n], **args} for n, args in plan.groups.items())]
            self.optimizers[plan.name] = self.recipe.build(plan.optimizer, params=params)
            self.schedulers[plan.name] = self.recipe.build(self.recipe.scheduler, optimizer=self.optimizers[plan.name])
        #: the steps that own their optimizer (a shared one is saved, restored and scheduled once)
        self.owners = [p.name for p in self.plans if not p.share]
        self.per_iteration = tr.scheduler.interval == "iteration"
        same = self.recipe.device is not None and self.device == self.recipe.device
        self.precision = self.recipe.precision if same else resolve_precision(tr.precision, self.device)
        fp16 = self.precision == "fp16"
        self.scalers = {p.name: torch.amp.GradScaler("cuda", enabled=fp16) for p in self.plans}
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.epoch_loss = {p.name: torch.zeros((), device=self.device) for p in self.plans}
        self.nonfinite_in_row = self.nonfinite_total = 0

    def _group_parameters(self, plan: StepPlan, name: str):
        """The parameters of a step's parameter group: a network's, or a loss term's trainable ones."""
        if name in plan.networks:
            return self.nets[name].parameters()
        loss = self.losses.get((plan.name, name))  # None: a term the recipe switched off (weight 0)
        return (p for p in (loss.parameters() if loss is not None else ()) if p.requires_grad)

    # -- what a checkpoint holds ------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """The modules whose weights a checkpoint stores: every network, and each loss with trainable
        parameters under ``"<step>:<term>"`` (a shared loss once, under its owner)."""
        mods = dict(self.nets)
        for (step, term), loss in self.losses.items():
            if trainable(loss) and loss not in mods.values():
                mods[f"{step}:{term}"] = loss
        return mods

    def load_weights(self, weights: dict[str, dict[str, Tensor]], source: str = "checkpoint") -> None:
        """Load per-module state dicts (as :func:`unpaired.runs.checkpoint.load_weights` gives them).
        A module without parameters or buffers (a noise sampler, a fixed flip) has nothing to load.

        Raises:
            CheckpointError: a module's weights are missing or do not fit the recipe.
        """
        for name, module in self.modules().items():
            if not module.state_dict() and not weights.get(name):
                continue
            try:
                module.load_state_dict(weights[name])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(f"{source}: weights of '{name}' missing or not fitting the recipe ({err}).",
                                      key=name, code="weights-mismatch") from err

    def state_dict(self) -> dict:
        """Everything but the weights that continuing exactly needs (safe for weights_only loading)."""
        return {
            "optimizers": {n: self.optimizers[n].state_dict() for n in self.owners},
            "schedulers": {n: self.schedulers[n].state_dict() for n in self.owners},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items() if s.is_enabled()},
            "pools": {n: p.state_dict() for n, p in self.pools.items()},
            "epoch_loss": {n: v.cpu() for n, v in self.epoch_loss.items()},
            "nonfinite_total": self.nonfinite_total,
            "generator": self.generator.get_state(),
            "epochs_done": self.epochs_done,
            "augments": {n: a.state_dict() for n, a in self.augments.items() if hasattr(a, "state_dict")},
        }

    def load_state_dict(self, state: dict) -> None:
        for group, objs in (("optimizers", self.optimizers), ("schedulers", self.schedulers),
                            ("scalers", self.scalers), ("pools", self.pools)):
            for name, saved in state[group].items():
                objs[name].load_state_dict(saved)
        for pool in self.pools.values():
            pool.images = [img.to(self.device) for img in pool.images]
        for n, v in state["epoch_loss"].items():
            self.epoch_loss[n] = v.to(self.device)
        self.nonfinite_total = state["nonfinite_total"]
        if "generator" in state:  # absent in checkpoints from before random nodes: nothing was drawn
            self.generator.set_state(state["generator"])
        self.epochs_done = state.get("epochs_done", 0)
        for name, saved in state.get("augments", {}).items():  # absent before augmentations had state
            self.augments[name].load_state_dict(saved)

    def follow_recipe(self, saved: ResolvedRecipe) -> None:
        """After :meth:`load_state_dict`: apply to the restored optimizers and schedules what this
        executor's recipe changes from the ``saved`` one (a resume with overrides).

        A step whose optimizer ``args`` changed (lr, betas, weight_decay, eps, ...) gets the recipe's
        values in every restored param group (its moments are kept); a parameter group with args of
        its own (``optimizer.groups``) keeps them, and a change of them applies to it alone. When a
        group's ``lr`` or ``train.scheduler`` changed, the schedule is rebuilt on the new base LRs and
        advanced to the restored position, so the LR is from the first resumed iteration what the
        recipe gives for it; a ``plateau`` schedule keeps its restored state unless the schedule
        itself changed.

        Args:
            saved: the recipe the restored state was trained with (same steps, optimizer types and
                parameter groups).
        """
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
        schedule_changed = self.recipe.scheduler != saved.scheduler
        before = {p.name: p for p in saved.steps}
        for plan in self.plans:
            if plan.share:
                continue
            opt, old = self.optimizers[plan.name], self.schedulers[plan.name]
            args, old_args = _group_args(plan), _group_args(before[plan.name])
            lr_changed = [new.get("lr") != was.get("lr") for new, was in zip(args, old_args)]
            rebuild = schedule_changed or (any(lr_changed) and not isinstance(old, plateau))
            if args == old_args and not rebuild:
                continue
            # the recipe's values are those of the optimizer it builds (the plugin's defaults included)
            probe = self.recipe.build(plan.optimizer, params=[{"params": [torch.zeros(1, requires_grad=True)], **g}
                                                              for g in ({}, *plan.groups.values())]).param_groups
            for group, probed, changed in zip(opt.param_groups, probe, lr_changed):
                values = {k: v for k, v in probed.items() if k not in IMPLEMENTATION and (k != "lr" or rebuild or changed)}
                group.update(values)
                if "lr" in values:  # the base LR, which a schedule multiplies
                    group["initial_lr"] = values["lr"]
            if rebuild:
                self.schedulers[plan.name] = self.recipe.build(self.recipe.scheduler, optimizer=opt)
                if not isinstance(self.schedulers[plan.name], plateau):
                    advance(self.schedulers[plan.name], old.last_epoch)

    # -- one iteration ----------------------------------------------------------------------------
    def _set_trainable(self, networks) -> None:
        for name, net in self.nets.items():
            net.requires_grad_(name in networks)

    def _images(self, plan: StepPlan, cache: dict, live: set) -> dict:
        """The step's images: fresh ones with gradients, the rest reused (or made once) detached.

        ``live`` names cached images that still hold their autograd graph (made with gradients by
        an earlier step for this one, their networks not updated since): a fresh image among them
        is reused instead of recomputed. Images are made call by call (:func:`group_calls`)."""
        images = {name: cache[name] for name in self.graph.data}
        for call in self.calls[plan.name]:
            if call[0] in plan.fresh:
                self._make([n for n in call if n not in live], images, cache)
            elif call[0] in plan.keep_graph:
                todo = [n for n in call if n not in cache]
                self._make_with_graph(todo, cache, plan)
                live.update(todo)
            else:
                with torch.no_grad():
                    self._make([n for n in call if n not in cache], cache, cache)
            images.update({n: cache[n] if n in plan.fresh else cache[n].detach() for n in call})
        return images

    def _make(self, names: list[str], inputs: dict, cache: dict) -> None:
        """Make ``names`` (one call's images) from ``inputs`` into ``cache``."""
        if names:
            cache.update(zip(names, self.graph.make_batch(names, self.fwd, inputs, self.generator)))

    def _make_with_graph(self, names: list[str], cache: dict, plan: StepPlan) -> None:
        """Images ``names`` with gradients to the networks that make them, though this step freezes them."""
        makers = set().union(*(self.graph.networks(n) for n in names))
        for net in makers:
            self.nets[net].requires_grad_(True)
        try:
            self._make(names, cache, cache)
        finally:
            for net in makers:
                self.nets[net].requires_grad_(net in plan.networks)

    def term_value(self, plan: StepPlan, term: Term, images: dict, batch: dict) -> Tensor:
        """The unweighted loss of ``term`` of ``plan`` on the step's ``images``.

        A discriminator given ``real_label``/``fake_label`` is called ``D(image, label)``; the
        loss plugin sees a one-input function either way. A gradient penalty runs in fp32 with
        autocast off (its double backward is where reduced precision hurts)."""
        loss = self.losses[plan.name, term.name]
        if not (term.adversarial or term.penalty):
            extra = loss_context(self.context[plan.name, term.name], term, self.nets, images, batch)
            return loss(images[term.input], images[term.target], **extra)
        args = term.discriminator_args
        real_disc = _bound(self.fwd[term.discriminator], images.get(term.real_label), args.get("real"))
        fake_disc = _bound(self.fwd[term.discriminator], images.get(term.fake_label), args.get("fake"))
        if term.penalty:
            with torch.autocast(self.device.type, enabled=False):
                fake = images[term.fake].detach().float() if term.fake else None
                return loss(real_disc, images[term.real].detach().float(), fake)
        if term.side == "generator":
            return loss.generator_loss(fake_disc, images[term.fake])
        observe = getattr(self.augments.get(term.discriminator), "observe_real", None)
        if observe is not None:  # an adaptive augmentation follows D's scores of the reals (ADA)
            real_disc = _Observed(real_disc, observe)
        fake = images[term.fake].detach()
        pool = self.pools.get(f"{plan.name}.{term.name}")
        if pool is not None:
            fake = pool.query(fake)
        real = images[term.real]
        if real_disc is fake_disc:
            return loss.discriminator_loss(real_disc, real, fake)
        # a labelled D scores the reals with their labels and everything else with the fakes'
        return loss.discriminator_loss(_Split(real_disc, fake_disc, real), real, fake)

    def checked_value(self, plan: StepPlan, term: Term, images: dict, batch: dict, reports: dict) -> Tensor:
        """:meth:`term_value`, which must be a scalar tensor; what it reports goes into ``reports``.

        Raises:
            RecipeError: the loss returned something else than a 0-dim floating tensor (code
                ``not-scalar``, key the term).
            Exception: what the loss raised, with a note naming the term.
        """
        try:
            with collecting(reports, f"{term.key}/", self.device):
                value = self.term_value(plan, term, images, batch)
        except Exception as err:  # a plugin's bug: keep its traceback, say which term ran it
            err.add_note(f"(in the loss term {term.where})")
            raise
        if not isinstance(value, Tensor) or value.ndim != 0 or not value.is_floating_point():
            shape = (f"a tensor of shape {tuple(value.shape)} and type {value.dtype}" if isinstance(value, Tensor)
                     else type(value).__name__)
            raise RecipeError(f"{term.where}: the loss returned {shape}, not a scalar floating tensor; its plugin "
                              "must reduce (e.g. .mean()).", key=term.where, code="not-scalar")
        return value

    def run_iteration(self, batch: dict, iteration: int = 0) -> dict[str, Tensor]:
        """Run the recipe's steps due at ``iteration`` (0-based) on one batch.

        Args:
            batch: the data's values: ``real_A`` and ``real_B``, (N, C, H, W) in [-1, 1], or what
                the dataset ``provides`` (images, labels (N,) int64); other entries reach losses
                that ask for ``batch``.
            iteration: iterations done before this one; a step with ``every: k`` runs on every k-th
                iteration (``iteration + 1`` a multiple of k), one with ``repeat: k`` k times.

        Returns:
            Each run term's unweighted loss, ``{"<step>/<term>": 0-dim tensor}``, what the
            terms reported, ``{"<step>/<term>/<name>": 0-dim tensor}`` (detached, on the device:
            reading one waits for the device), and each scheduled weight, ``{"weights/<step>/<term>": w}``.

        Raises:
            TrainingDiverged: ``train.max_nonfinite`` iterations in a row had non-finite values
                (with ``train.nan_guard``, a non-finite step is skipped and counted).
        """
        on_device = {k: v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
        cache = {k: _contiguous(on_device[k], self.memory_format) for k in self.graph.data}
        values, bad, live, updated = {}, [], set(), set()
        self.iteration = iteration
        amp = torch.autocast(self.device.type, self.autocast_dtype) if self.autocast_dtype else nullcontext()
        for plan in self.plans:
            if (iteration + 1) % plan.every:
                continue
            for _ in range(plan.repeat):
                if plan.refresh:
                    self._refresh(cache, live, updated)
                self._run(plan, cache, on_device, amp, values, bad, live)
                updated.update(plan.networks)
                # a graph is spent once backpropagated through, or stale once its networks changed
                live -= {n for n in live if n in plan.fresh or self.graph.networks(n) & set(plan.networks)}
        if self.per_iteration:
            for name in self.owners:
                self.schedulers[name].step()
        for name, augment in self.augments.items():
            if hasattr(augment, "after_iteration"):
                augment.after_iteration()
                values[f"augment/{name}/p"] = torch.tensor(augment.p)
        self._check_finite(bad, iteration)
        return values

    def _refresh(self, cache: dict, live: set, updated: set) -> None:
        """Forget the images made by networks in ``updated`` (data and random draws stay)."""
        for name in [n for n in cache if n in self.graph.nodes and self.graph.nodes[n].random is None]:
            if self.graph.networks(name) & updated:
                del cache[name]
                live.discard(name)

    def step_losses(self, plan: StepPlan, cache: dict, batch: dict, amp, live: set,
                    due=lambda term: True) -> tuple[dict, Tensor, dict]:
        """A step's images, its ``due`` loss terms and their weighted sum (weights at the current
        iteration), with what the terms reported."""
        self._set_trainable(plan.networks)
        reports: dict[str, Tensor] = {}
        with amp:
            images = self._images(plan, cache, live)
            terms = {t: self.checked_value(plan, term, images, batch, reports) for t, term in plan.terms.items()
                     if due(term)}
            total = sum(self.weight(plan.terms[t]) * v for t, v in terms.items())
        return terms, total, reports

    def weight(self, term: Term) -> float:
        """``term``'s weight at this iteration (its schedule's value, times a lazy term's ``every``)."""
        return term.weight_at(self.iteration, self.epochs_done)

    def _run(self, plan: StepPlan, cache: dict, batch: dict, amp, values: dict, bad: list, live: set) -> None:
        opt, scaler = self.optimizers[plan.name], self.scalers[plan.name]
        opt.zero_grad(set_to_none=True)
        terms, total, reports = self.step_losses(plan, cache, batch, amp, live, lambda t: t.due(self.iteration))
        if not terms:  # every term of the step is lazy and none is due: no update
            return
        scaler.scale(total).backward()
        params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
        if self.dist.enabled:
            distributed.average_gradients(params)
        if self.recipe.train.nan_guard:
            check_value = total.detach()
            if not scaler.is_enabled():  # with fp16, the scaler already skips non-finite gradients
                grads = [p.grad for p in params if p.grad is not None]
                check_value = check_value + (torch.nn.utils.get_total_norm(grads) if grads else 0)
            if not bool(torch.isfinite(check_value)):  # one host sync per step
                bad += [f"{plan.name}.{t}" for t, v in terms.items() if not torch.isfinite(v)] or [f"{plan.name} (gradients)"]
                opt.zero_grad(set_to_none=True)
                return
        scaler.step(opt)
        scaler.update()
        self.epoch_loss[plan.name] += total.detach().float()
        values.update({f"{plan.name}/{t}": v.detach().float() for t, v in terms.items()})
        values.update({f"weights/{plan.name}/{t}": torch.tensor(self.weight(plan.terms[t]), device=self.device)
                       for t in terms if plan.terms[t].weight.scheduled})
        values.update(reports)

    def _check_finite(self, bad: list[str], iteration: int) -> None:
        if not bad:
            self.nonfinite_in_row = 0
            return
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        limit = self.recipe.train.max_nonfinite
        warn(f"non-finite loss at iteration {iteration + 1} in {', '.join(bad)}; step skipped "
             f"({self.nonfinite_in_row}/{limit} in a row)")
        if self.nonfinite_in_row >= limit:
            raise TrainingDiverged(
                f"training stopped: {limit} iterations in a row had non-finite values (last in {', '.join(bad)}).",
                code="diverged")

    def end_epoch(self, iterations: int) -> None:
        """Step the per-epoch LR schedules (plateau with the epoch's mean step loss over
        ``iterations``) and count the epoch for ``per: epoch`` weight schedules."""
        self.epochs_done += 1
        for name in self.owners:
            sch = self.schedulers[name]
            if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sch.step(float(self.epoch_loss[name]) / max(1, iterations))
            elif not self.per_iteration:
                sch.step()
        for value in self.epoch_loss.values():
            value.zero_()

    def learning_rates(self) -> dict[str, float]:
        return {n: o.param_groups[0]["lr"] for n, o in self.optimizers.items()}


def _contiguous(value: Tensor, memory_format) -> Tensor:
    """An image batch in the training memory format; labels and codes as they are."""
    return value.contiguous(memory_format=memory_format) if value.ndim == 4 else value


def _bound(disc, label: Tensor | None, kwargs=None):
    """The discriminator as a function of the image alone: ``D(x, label, **kwargs)``, the label
    and keyword arguments each when given (the network itself when neither is)."""
    return disc if label is None and not kwargs else _Bound(disc, label, dict(kwargs or {}))


class _Bound:
    """``D(x, label, **kwargs)`` as ``f(x)``: a multi-domain discriminator's output for each
    sample's domain, and the term's ``discriminator_args`` (e.g. which queue of past batches a
    UVCGAN2 discriminator reads and fills). Further keyword arguments of a call (a penalty's
    ``mix``) pass through."""

    def __init__(self, disc, label: Tensor | None, kwargs: dict):
        self.disc, self.label, self.kwargs = disc, label, kwargs

    def __call__(self, x: Tensor, **more) -> Tensor:
        return self.disc(x, *(() if self.label is None else (self.label,)), **self.kwargs, **more)


class _Augmented:
    """``D(augment(x), ...)``: a discriminator whose every input (real, generated, a penalty's
    interpolates) goes through a differentiable augmentation first, drawn from ``generator``."""

    def __init__(self, disc, augment, generator: torch.Generator):
        self.disc, self.augment, self.generator = disc, augment, generator

    def __call__(self, x: Tensor, *args, **kwargs) -> Tensor:
        return self.disc(self.augment(x, generator=self.generator), *args, **kwargs)


class _Observed:
    """A discriminator function whose outputs are also shown to ``observe`` (ADA's signal)."""

    def __init__(self, disc, observe):
        self.disc, self.observe = disc, observe

    def __call__(self, x: Tensor, **kwargs) -> Tensor:
        out = self.disc(x, **kwargs)
        self.observe(out[0] if isinstance(out, (list, tuple)) else out)  # a multi-scale D: its full-size map
        return out


class _Split:
    """One function for a loss that scores reals and fakes: the real batch (the very tensor) goes to
    the discriminator with the reals' labels, any other input (the fakes, a penalty's
    interpolates) to the one with the fakes' labels."""

    def __init__(self, real, fake, real_batch: Tensor):
        self.real, self.fake, self.real_batch = real, fake, real_batch

    def __call__(self, x: Tensor) -> Tensor:
        return self.real(x) if x is self.real_batch else self.fake(x)
