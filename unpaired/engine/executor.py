"""The executor: one training iteration of a recipe, and the state it owns.

It builds what the recipe names — networks, loss modules (with the context they ask for), image
pools, one optimizer and LR schedule per step, gradient scalers — and runs the recipe's steps on a
batch. It knows nothing of epochs, data loading, run directories or logging: that is the loop's
(:mod:`unpaired.trainer`), so a benchmark or a notebook can drive it directly::

    ex = Executor(load_recipe("cyclegan-fashion"))
    losses = ex.train_step({"real_A": a, "real_B": b})       # (N, C, H, W) in [-1, 1]

Each step freezes every network it does not optimise, computes the images its loss terms need
(:mod:`unpaired.plan`), sums the weighted terms and takes one optimizer step. A loss declares what
it needs beyond ``input`` and ``target`` by parameter name: ``network`` (the term's ``network:``,
in the constructor and/or ``forward``), ``images`` (every image of the step by name) and
``batch`` (the iteration's data). A loss with trainable parameters (e.g. PatchNCE's projection
head) is optimised by the step that uses it and saved in checkpoints.
"""

from __future__ import annotations

import inspect
from contextlib import nullcontext

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from unpaired.runtime import distributed
from unpaired.engine.build import build_network
from unpaired.runtime.device import compile_cache, pick_device, resolve_precision
from unpaired.errors import CheckpointError, RecipeError, TrainingDiverged, warn
from unpaired.recipe.graph import DATA_IMAGES, ImageGraph
from unpaired.recipe.plan import StepPlan, make_plan
from unpaired.engine.pool import ImagePool
from unpaired.recipe.validate import check
from unpaired.recipe.load import plugin_args
from unpaired.plugin.registry import Registry, default_registry
from unpaired.engine.schedule import advance

#: Param-group keys that choose how an optimizer computes, not what: a resume keeps the restored ones.
IMPLEMENTATION = ("params", "fused", "foreach", "capturable", "differentiable")

#: What a consistency loss may ask for by parameter name, besides ``input`` and ``target``.
CONTEXT = ("network", "images", "batch")


def build_loss(registry: Registry, term, where: str, nets: dict[str, nn.Module]) -> nn.Module:
    """The loss module of a recipe term; a constructor parameter ``network`` receives ``nets[term.network]``.

    Raises:
        RecipeError: unknown loss, bad arguments, or a loss that needs a network the term does not name.
    """
    kind = "adversarial_loss" if term.adversarial else "consistency_loss"
    name = term.adversarial or term.consistency
    args = plugin_args(term.args)
    param = inspect.signature(registry.get(kind, name, where).factory).parameters.get("network")
    if param is not None:
        if term.network is not None:
            args["network"] = nets[term.network]
        elif param.default is inspect.Parameter.empty:
            raise RecipeError(f"{where}.network: the '{name}' loss needs a network; name one of {', '.join(nets)}.")
    return registry.create(kind, name, where, **args)


def context_names(loss: nn.Module) -> list[str]:
    """What of :data:`CONTEXT` a loss's ``forward`` asks for, by parameter name."""
    return [n for n in CONTEXT if n in inspect.signature(loss.forward).parameters]


def loss_context(names, term, nets: dict, images: dict, batch: dict) -> dict:
    """The keyword arguments ``names`` (from :func:`context_names`) of a consistency term's loss."""
    context = {"network": nets.get(term.network), "images": images, "batch": batch}
    return {k: context[k] for k in names}


def trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


class Executor:
    """Run the steps of a recipe on batches, owning networks, losses, pools and optimizers.

    Args:
        recipe: a recipe from :func:`unpaired.recipe.load_recipe` (validated here).
        registry: component registry (default: the entry-point registry).
        device: where to train (default: the recipe's ``device``).
        dist: this process's place in a ``torchrun`` job (default: a single process).

    Raises:
        RecipeError: the recipe has problems (all listed), or asks for an unavailable device.
    """

    def __init__(self, recipe: DictConfig, registry: Registry | None = None, device: str | torch.device | None = None,
                 dist: distributed.DistInfo | None = None):
        self.recipe = check(recipe, registry or default_registry())
        self.registry = (registry or default_registry()).for_recipe(recipe)  # with the recipe's own plugins
        self.dist = dist or distributed.DistInfo()
        self.device = torch.device(device) if device is not None else pick_device(recipe.device, self.dist.local_rank)
        tr = recipe.train
        if tr.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        torch.manual_seed(recipe.seed)  # the same initial weights on every rank
        self.nets = {name: build_network(recipe, name, self.registry).to(self.device) for name in recipe.networks}
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
        self.graph = ImageGraph(recipe.images)
        batched = frozenset(n for n, net in self.nets.items() if tr.batch_passes and getattr(net, "per_sample", False))
        self.plans = make_plan(recipe, self.graph, batched)

        self.losses: dict[tuple[str, str], nn.Module] = {}
        self.pools: dict[str, ImagePool] = {}
        for plan in self.plans:
            for tname, term in sorted(plan.terms.items(), key=lambda kv: kv[1].share is not None):
                if term.share:
                    self.losses[plan.name, tname] = self.losses[plan.name, term.share]
                    continue
                loss = build_loss(self.registry, term, f"steps.{plan.name}.losses.{tname}", self.nets)
                self.losses[plan.name, tname] = loss.to(self.device)
                if term.adversarial and plan.sides[tname] == "discriminator" and term.pool:
                    self.pools[f"{plan.name}.{tname}"] = ImagePool(term.pool, seed=recipe.seed + self.dist.rank)
        self.context = {key: context_names(loss) for key, loss in self.losses.items()}
        if self.dist.enabled:  # loss parameters (e.g. a projection head) start equal on every rank too
            distributed.broadcast_networks({f"{s}:{t}": m for (s, t), m in self.losses.items()})

        self.optimizers, self.schedulers = {}, {}
        sch = tr.scheduler
        for plan in self.plans:
            spec = recipe.steps[plan.name].optimizer
            params = [p for n in plan.networks for p in self.nets[n].parameters()]
            params += [p for t in plan.terms for p in self.losses[plan.name, t].parameters() if p.requires_grad]
            self.optimizers[plan.name] = self.registry.create(
                "optimizer", spec.type, f"steps.{plan.name}.optimizer", params=list(dict.fromkeys(params)),
                **plugin_args(spec.args),
            )
            self.schedulers[plan.name] = self._make_scheduler(self.optimizers[plan.name])
        self.per_iteration = sch.interval == "iteration"
        self.precision = resolve_precision(tr.precision, self.device)
        fp16 = self.precision == "fp16"
        self.scalers = {p.name: torch.amp.GradScaler("cuda", enabled=fp16) for p in self.plans}
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.epoch_loss = {p.name: torch.zeros((), device=self.device) for p in self.plans}
        self.nonfinite_in_row = self.nonfinite_total = 0

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
        """Load per-module state dicts (as :func:`unpaired.checkpoint.load_weights` gives them).

        Raises:
            CheckpointError: a module's weights are missing or do not fit the recipe.
        """
        for name, module in self.modules().items():
            try:
                module.load_state_dict(weights[name])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(f"{source}: weights of '{name}' missing or not fitting the recipe ({err}).") from err

    def state_dict(self) -> dict:
        """Everything but the weights that continuing exactly needs (safe for weights_only loading)."""
        return {
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items() if s.is_enabled()},
            "pools": {n: p.state_dict() for n, p in self.pools.items()},
            "epoch_loss": {n: v.cpu() for n, v in self.epoch_loss.items()},
            "nonfinite_total": self.nonfinite_total,
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

    def _make_scheduler(self, optimizer):
        """The recipe's LR schedule (``train.scheduler``) on ``optimizer``, at its start."""
        sch = self.recipe.train.scheduler
        return self.registry.create("scheduler", sch.type, "train.scheduler", optimizer=optimizer, **plugin_args(sch.args))

    def follow_recipe(self, saved: DictConfig) -> None:
        """After :meth:`load_state_dict`: apply to the restored optimizers and schedules what this
        executor's recipe changes from the ``saved`` one (a resume with overrides).

        A step whose optimizer ``args`` changed (lr, betas, weight_decay, eps, ...) gets the recipe's
        values in every restored param group (its moments are kept). When a step's ``lr`` or
        ``train.scheduler`` changed, its schedule is rebuilt on the new base LR and advanced to the
        restored position, so the LR is from the first resumed iteration what the recipe gives for
        it; a ``plateau`` schedule keeps its restored state unless the schedule itself changed.

        Args:
            saved: the recipe the restored state was trained with (same steps and optimizer types).
        """
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
        schedule_changed = self.recipe.train.scheduler != saved.train.scheduler
        for name, opt in self.optimizers.items():
            spec = self.recipe.steps[name].optimizer
            args, old_args = plugin_args(spec.args), plugin_args(saved.steps[name].optimizer.args)
            old = self.schedulers[name]
            lr_changed = args.get("lr") != old_args.get("lr")
            rebuild = schedule_changed or (lr_changed and not isinstance(old, plateau))
            if args == old_args and not rebuild:
                continue
            # the recipe's values are those of the optimizer it builds (the plugin's defaults included)
            probe = self.registry.create("optimizer", spec.type, f"steps.{name}.optimizer",
                                         params=[torch.zeros(1, requires_grad=True)], **args).param_groups[0]
            values = {k: v for k, v in probe.items() if k not in IMPLEMENTATION and (k != "lr" or rebuild or lr_changed)}
            for group in opt.param_groups:
                group.update(values)
                if "lr" in values:  # the base LR, which a schedule multiplies
                    group["initial_lr"] = values["lr"]
            if rebuild:
                self.schedulers[name] = self._make_scheduler(opt)
                if not isinstance(self.schedulers[name], plateau):
                    advance(self.schedulers[name], old.last_epoch)

    # -- one iteration ----------------------------------------------------------------------------
    def _set_trainable(self, networks) -> None:
        for name, net in self.nets.items():
            net.requires_grad_(name in networks)

    def _images(self, plan: StepPlan, cache: dict, live: set) -> dict:
        """The step's images: fresh ones with gradients, the rest reused (or made once) detached.

        ``live`` names cached images that still hold their autograd graph (made with gradients by
        an earlier step for this one, their networks not updated since): a fresh image among them
        is reused instead of recomputed. Images are made call by call (``plan.calls``)."""
        images = {name: cache[name] for name in DATA_IMAGES}
        for call in plan.calls:
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
            cache.update(zip(names, self.graph.make_batch(names, self.fwd, inputs)))

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

    def term_value(self, plan: StepPlan, tname: str, images: dict, batch: dict) -> Tensor:
        """The unweighted loss of term ``tname`` of ``plan`` on the step's ``images``."""
        term, loss = plan.terms[tname], self.losses[plan.name, tname]
        if term.consistency:
            extra = loss_context(self.context[plan.name, tname], term, self.nets, images, batch)
            return loss(images[term.input], images[term.target], **extra)
        disc = self.fwd[term.discriminator]
        if plan.sides[tname] == "generator":
            return loss.generator_loss(disc, images[term.fake])
        fake = images[term.fake].detach()
        pool = self.pools.get(f"{plan.name}.{tname}")
        if pool is not None:
            fake = pool.query(fake)
        return loss.discriminator_loss(disc, images[term.real], fake)

    def _checked_value(self, plan: StepPlan, tname: str, images: dict, batch: dict) -> Tensor:
        where = f"steps.{plan.name}.losses.{tname}"
        try:
            value = self.term_value(plan, tname, images, batch)
        except Exception as err:  # a plugin's bug: keep its traceback, say which term ran it
            err.add_note(f"(in the loss term {where})")
            raise
        if not isinstance(value, Tensor) or value.ndim != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise RecipeError(f"{where}: the loss returned {shape}, not a scalar tensor; its plugin must reduce "
                              "(e.g. .mean()).")
        return value

    def train_step(self, batch: dict, iteration: int = 0) -> dict[str, Tensor]:
        """Run the recipe's steps due at ``iteration`` (0-based) on one batch.

        Args:
            batch: ``real_A`` and ``real_B``, (N, C, H, W) in [-1, 1] (any other entries reach
                losses that ask for ``batch``).
            iteration: iterations done before this one; a step with ``every: k`` runs on every k-th
                iteration (``iteration + 1`` a multiple of k), one with ``repeat: k`` k times.

        Returns:
            Each run term's unweighted loss, ``{"<step>/<term>": 0-dim tensor}`` (detached, on the
            device: reading one waits for the device).

        Raises:
            TrainingDiverged: ``train.max_nonfinite`` iterations in a row had non-finite values
                (with ``train.nan_guard``, a non-finite step is skipped and counted).
        """
        on_device = {k: v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
        cache = {k: on_device[k].contiguous(memory_format=self.memory_format) for k in DATA_IMAGES}
        values, bad, live = {}, [], set()
        amp = torch.autocast(self.device.type, self.autocast_dtype) if self.autocast_dtype else nullcontext()
        for plan in self.plans:
            if (iteration + 1) % plan.every:
                continue
            for _ in range(plan.repeat):
                self._run(plan, cache, on_device, amp, values, bad, live)
                # a graph is spent once backpropagated through, or stale once its networks changed
                live -= {n for n in live if n in plan.fresh or self.graph.networks(n) & set(plan.networks)}
        if self.per_iteration:
            for sch in self.schedulers.values():
                sch.step()
        self._check_finite(bad, iteration)
        return values

    def _run(self, plan: StepPlan, cache: dict, batch: dict, amp, values: dict, bad: list, live: set) -> None:
        self._set_trainable(plan.networks)
        opt, scaler = self.optimizers[plan.name], self.scalers[plan.name]
        opt.zero_grad(set_to_none=True)
        with amp:
            images = self._images(plan, cache, live)
            terms = {t: self._checked_value(plan, t, images, batch) for t in plan.terms}
            total = sum(plan.terms[t].weight * v for t, v in terms.items())
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
                f"training stopped: {limit} iterations in a row had non-finite values (last in {', '.join(bad)})."
            )

    def end_epoch(self, iterations: int) -> None:
        """Step the per-epoch LR schedules (plateau with the epoch's mean step loss over ``iterations``)."""
        for name, sch in self.schedulers.items():
            if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sch.step(float(self.epoch_loss[name]) / max(1, iterations))
            elif not self.per_iteration:
                sch.step()
            self.epoch_loss[name].zero_()

    def learning_rates(self) -> dict[str, float]:
        return {n: o.param_groups[0]["lr"] for n, o in self.optimizers.items()}
