"""The generic multi-network trainer: runs any validated recipe.

Each iteration runs the recipe's steps in order. A step freezes every network it does not
optimise, computes the images its loss terms need (see :mod:`unpaired.plan`), sums the weighted
terms, and takes one optimizer step. Nothing here knows about CycleGAN: that is a recipe.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from . import checkpoint, distributed
from .build import build_dataset, build_network, pick_device
from .data import EpochSampler, UnalignedPairs
from .errors import CheckpointError, DataError, RecipeError, UnpairedError
from .plan import make_plan
from .pool import ImagePool
from .recipe import DATA_IMAGES, apply_overrides, check, from_yaml, plugin_args, to_yaml
from .registry import Registry, default_registry
from .samples import fixed_inputs, save_grid


def _warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


class TrainingDiverged(UnpairedError, RuntimeError):
    """Losses or gradients stayed non-finite for ``train.max_nonfinite`` iterations in a row."""


class Trainer:
    """Train the networks of a recipe.

    Args:
        recipe: a recipe from :func:`unpaired.recipe.load_recipe` (validated here).
        out_dir: run directory (default ``recipe.out_dir`` or ``runs/<name>``): recipe.yaml,
            checkpoints/, samples/, tb/ (TensorBoard) and log.jsonl (logged losses) go there.
        registry: component registry (default: the entry-point registry).

    Raises:
        RecipeError: the recipe has problems (all listed), or asks for an unavailable device.
    """

    def __init__(self, recipe: DictConfig, out_dir: str | Path | None = None, registry: Registry | None = None):
        self.registry = registry or default_registry()
        self.recipe = check(recipe, self.registry)
        tr = recipe.train
        self.dist = distributed.setup()
        self.device = pick_device(recipe.device, self.dist.local_rank)
        self.out_dir = Path(out_dir or recipe.out_dir or f"runs/{recipe.name}")
        if tr.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        torch.manual_seed(recipe.seed)  # the same initial weights on every rank
        self.nets = {name: build_network(recipe, name, self.registry).to(self.device) for name in recipe.networks}
        if tr.channels_last:
            for net in self.nets.values():
                net.to(memory_format=torch.channels_last)
        if self.dist.enabled:
            distributed.broadcast_networks(self.nets)
        self.fwd = {n: torch.compile(net) if tr.compile else net for n, net in self.nets.items()}
        self.plans = make_plan(recipe)

        self.losses, self.pools = {}, {}
        for plan in self.plans:
            for tname, term in plan.terms.items():
                kind = "adversarial_loss" if term.adversarial else "consistency_loss"
                args = plugin_args(term.args)
                where = f"steps.{plan.name}.losses.{tname}"
                loss = self.registry.create(kind, term.adversarial or term.consistency, where=where, **args)
                self.losses[plan.name, tname] = loss.to(self.device)
                if term.adversarial and term.discriminator in plan.networks and term.pool:
                    self.pools[f"{plan.name}.{tname}"] = ImagePool(term.pool, seed=recipe.seed + self.dist.rank)
        self.optimizers, self.schedulers = {}, {}
        for plan in self.plans:
            spec = recipe.steps[plan.name].optimizer
            params = [p for n in plan.networks for p in self.nets[n].parameters()]
            self.optimizers[plan.name] = self.registry.create(
                "optimizer", spec.type, f"steps.{plan.name}.optimizer", params=params,
                **plugin_args(spec.args),
            )
            sch = tr.scheduler
            self.schedulers[plan.name] = self.registry.create(
                "scheduler", sch.type, "train.scheduler", optimizer=self.optimizers[plan.name],
                **plugin_args(sch.args),
            )
        self.memory_format = torch.channels_last if tr.channels_last else torch.contiguous_format
        self.nan_guard = tr.nan_guard
        self.sources = {name: (spec.net, spec.input) for name, spec in recipe.images.items()}
        fp16 = tr.precision == "fp16"
        self.scalers = {p.name: torch.amp.GradScaler("cuda", enabled=fp16) for p in self.plans}
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tr.precision)

        self.data = build_dataset(recipe, self.registry)
        self.pairs = UnalignedPairs(self.data.domain("A", "train"), self.data.domain("B", "train"), seed=recipe.seed)
        if recipe.samples and self.dist.is_main:
            self.sample_inputs = {k: v.to(self.device) for k, v in fixed_inputs(self.data, 8).items()}
        self.sampler = EpochSampler(len(self.pairs), recipe.seed, rank=self.dist.rank, world_size=self.dist.world_size)
        self.epoch = self.step = self.epoch_step = 0  # completed epochs / iterations / iterations this epoch
        self.epoch_samples = 0  # samples this rank took this epoch (the resume position, whatever the batch size)
        self.nonfinite_in_row = self.nonfinite_total = 0
        self.history: list[dict] = []  # the logged means, also written to log.jsonl
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._epoch_loss = {p.name: torch.zeros((), device=self.device) for p in self.plans}
        self._stop_signal: int | None = None
        self._saved_step = 0
        self._writer = None

    # -- one iteration ----------------------------------------------------------------------------
    def _set_trainable(self, networks) -> None:
        for name, net in self.nets.items():
            net.requires_grad_(name in networks)

    def _images(self, plan, cache: dict) -> dict:
        """The step's images: fresh ones with gradients, the rest reused (or made once) detached."""
        images = {}
        for name in DATA_IMAGES:
            images[name] = cache[name]
        for name in plan.images:
            net, source = self.sources[name]
            if name in plan.fresh:
                cache[name] = images[name] = self.fwd[net](images[source])
            else:
                if name not in cache:
                    with torch.no_grad():
                        cache[name] = self.fwd[net](images[source])
                images[name] = cache[name].detach()
        return images

    def _term(self, plan, tname: str, term, images: dict) -> torch.Tensor:
        loss = self.losses[plan.name, tname]
        if term.consistency:
            return loss(images[term.input], images[term.target])
        disc = self.fwd[term.discriminator]
        if term.discriminator not in plan.networks:
            return loss.generator_loss(disc, images[term.fake])
        fake = images[term.fake].detach()
        pool = self.pools.get(f"{plan.name}.{tname}")
        if pool is not None:
            fake = pool.query(fake)
        return loss.discriminator_loss(disc, images[term.real], fake)

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """Run every step of the recipe on one batch; return each term's loss (detached, unweighted).

        ``batch`` holds ``real_A`` and ``real_B``, (N, C, H, W) in [-1, 1]. A step whose loss or
        gradients are not finite is skipped (with ``train.nan_guard``) and the iteration counted.
        """
        cache = {k: batch[k].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
                 for k in DATA_IMAGES}
        values, bad = {}, []
        amp = torch.autocast(self.device.type, self.autocast_dtype) if self.autocast_dtype else nullcontext()
        for plan in self.plans:
            self._set_trainable(plan.networks)
            opt, scaler = self.optimizers[plan.name], self.scalers[plan.name]
            opt.zero_grad(set_to_none=True)
            with amp:
                images = self._images(plan, cache)
                terms = {t: self._term(plan, t, spec, images) for t, spec in plan.terms.items()}
                total = sum(plan.terms[t].weight * v for t, v in terms.items())
            scaler.scale(total).backward()
            params = [p for p in opt.param_groups[0]["params"] if p.requires_grad]
            if self.dist.enabled:
                distributed.average_gradients(params)
            if self.nan_guard:
                check = total.detach()
                if not scaler.is_enabled():  # with fp16, the scaler already skips non-finite gradients
                    grads = [p.grad for p in params if p.grad is not None]
                    check = check + (torch.nn.utils.get_total_norm(grads) if grads else 0)
                if not bool(torch.isfinite(check)):  # one host sync per step
                    bad += [f"{plan.name}.{t}" for t, v in terms.items() if not torch.isfinite(v)] or [f"{plan.name} (gradients)"]
                    opt.zero_grad(set_to_none=True)
                    continue
            scaler.step(opt)
            scaler.update()
            self._epoch_loss[plan.name] += total.detach().float()
            values.update({f"{plan.name}/{t}": v.detach().float() for t, v in terms.items()})
        self._check_finite(bad)
        return values

    def _check_finite(self, bad: list[str]) -> None:
        if not bad:
            self.nonfinite_in_row = 0
            return
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        limit = self.recipe.train.max_nonfinite
        _warn(f"non-finite loss at iteration {self.step + 1} in {', '.join(bad)}; step skipped "
                   f"({self.nonfinite_in_row}/{limit} in a row)")
        if self.nonfinite_in_row >= limit:
            last = checkpoint.latest(self.out_dir, missing_ok=True)
            raise TrainingDiverged(
                f"training stopped: {limit} iterations in a row had non-finite values (last in {', '.join(bad)}). "
                f"The last good checkpoint is {last or '(none yet)'}; lower the learning rate or check the data, "
                "then resume from it."
            )

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until ``train.epochs`` (or ``train.max_steps``); return the last logged losses.

        SIGINT/SIGTERM finish the current iteration, write a checkpoint and stop (``interrupted``
        in the result). Checkpoints go out every ``checkpoint_every`` iterations, at each epoch's
        end and at the end.
        """
        tr = self.recipe.train
        self._prepare_out_dir()
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.epoch < tr.epochs and not self._done():
                try:
                    self._run_epoch()
                except DataError as err:  # keep the work done so far, then say what to fix
                    saved = self.save_checkpoint()
                    where = f"a checkpoint at iteration {self.step} is in {saved.parent}" if saved else "no iteration was lost"
                    reason = str(err).strip().splitlines()[-1]  # a worker's error carries its traceback
                    raise DataError(f"{reason} Training stopped; {where}: fix the data, then resume with "
                                    f"'unpaired train --resume {self.out_dir}'.") from err
            self.save_checkpoint()
            self.save_samples()
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            if self._writer:
                self._writer.close()
        return {"step": self.step, "epoch": self.epoch, "interrupted": self._stop_signal,
                "losses": self.history[-1] if self.history else {}}

    def _done(self) -> bool:
        tr = self.recipe.train
        return self._stop_signal is not None or (tr.max_steps is not None and self.step >= tr.max_steps)

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum
        tqdm.write(f"{signal.Signals(signum).name} received: stopping after this iteration and writing a checkpoint.")

    def _run_epoch(self) -> None:
        tr, data = self.recipe.train, self.recipe.data
        self.pairs.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, start=self.epoch_samples)
        loader = DataLoader(self.pairs, batch_size=data.batch_size, sampler=self.sampler,
                            num_workers=data.num_workers, pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(self.recipe.seed + self.epoch))
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{tr.epochs}", disable=not self.dist.is_main,
                   initial=self.epoch_step, total=self.epoch_step + len(loader), dynamic_ncols=True)
        for batch in bar:
            values = self.train_step(batch)
            self.step += 1
            self.epoch_step += 1
            self.epoch_samples += len(batch["real_A"])
            self._accumulate(values)
            if self.step % tr.log_every == 0:
                bar.set_postfix(self.log(), refresh=False)
            if self.step % tr.sample_every == 0:
                self.save_samples()
            if self.step % tr.checkpoint_every == 0 and self.epoch_samples < self.sampler.epoch_length:
                self.save_checkpoint()  # (an epoch's last iteration is saved after the epoch's end)
            if self._done():
                break
        if self.epoch_samples < self.sampler.epoch_length:  # stopped early: the epoch goes on after a resume
            return
        iterations = self.epoch_step  # this whole epoch's, a resumed part included
        self.epoch += 1
        self.epoch_step = self.epoch_samples = 0
        for name, sch in self.schedulers.items():
            if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sch.step(float(self._epoch_loss[name]) / max(1, iterations))
            else:
                sch.step()
            self._epoch_loss[name].zero_()
        self.save_checkpoint()

    # -- logging ----------------------------------------------------------------------------------
    def _accumulate(self, values: dict[str, torch.Tensor]) -> None:
        for k, v in values.items():
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
        self._count += 1

    def log(self) -> dict[str, float]:
        """Mean of each loss term since the last log (over ranks too): one host sync; written out."""
        if not self._sums:
            return {}
        keys = sorted(self._sums)
        stacked = torch.stack([self._sums[k] for k in keys]) / self._count
        if self.dist.enabled:
            stacked = distributed.mean_over_ranks(stacked)
        means = dict(zip(keys, stacked.tolist()))
        self._sums, self._count = {}, 0
        record = {"step": self.step, "epoch": self.epoch, "time": time.time(), **means,
                  **{f"lr/{n}": o.param_groups[0]["lr"] for n, o in self.optimizers.items()}}
        self.history.append(record)
        if self.dist.is_main:
            with open(self.out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            for k, v in record.items():
                if k not in ("step", "epoch", "time"):
                    self.writer.add_scalar(k, v, self.step)
        return {k.split("/")[-1]: f"{v:.3f}" for k, v in means.items()}

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            self._writer = SummaryWriter(str(self.out_dir / "tb"))
        return self._writer

    def save_samples(self) -> Path | None:
        """Write a grid of ``recipe.samples`` on fixed test images to samples/step_XXXXXXXX.png.

        The same images every time: read once, when the trainer is built, so a missing or broken
        test split shows before training rather than at the first grid."""
        if not self.recipe.samples or not self.dist.is_main:
            return None
        path = self.out_dir / "samples" / f"step_{self.step:08d}.png"
        grid = save_grid(self.recipe, self.fwd, self.sample_inputs, path)
        self.writer.add_image("samples", grid, self.step)
        return path

    # -- run directory and checkpoints ------------------------------------------------------------
    def _prepare_out_dir(self) -> None:
        if not self.dist.is_main:
            return
        existing = checkpoint.latest(self.out_dir, missing_ok=True) if self.out_dir.is_dir() else None
        if existing is not None and self.step == 0:
            raise CheckpointError(
                f"{self.out_dir} already holds a run (latest checkpoint {existing.name}). Continue it with "
                f"'unpaired train --resume {self.out_dir}', or pass another --out directory."
            )
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".write-test"
            probe.write_bytes(b"\0" * 1024 * 1024)
            probe.unlink()
            (self.out_dir / "recipe.yaml").write_text(to_yaml(self.recipe))
        except OSError as err:
            raise CheckpointError(
                f"{self.out_dir}: cannot write to the run directory ({err}). Free disk space, fix its "
                "permissions, or pass another --out directory."
            ) from err

    def state_dict(self) -> dict:
        """Everything but the weights that continuing exactly needs (safe for weights_only loading)."""
        np_state = np.random.get_state()
        return {
            "counters": {"epoch": self.epoch, "step": self.step, "epoch_step": self.epoch_step,
                         "epoch_samples": self.epoch_samples, "nonfinite_total": self.nonfinite_total},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items() if s.is_enabled()},
            "pools": {n: p.state_dict() for n, p in self.pools.items()},
            "epoch_loss": {n: v.cpu() for n, v in self._epoch_loss.items()},
            "rng": {
                "python": random.getstate(),
                "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    def load_state_dict(self, state: dict) -> None:
        c = state["counters"]
        self.epoch, self.step, self.epoch_step = c["epoch"], c["step"], c["epoch_step"]
        self.epoch_samples, self.nonfinite_total = c["epoch_samples"], c["nonfinite_total"]
        self._saved_step = self.step  # this state is on disk already
        for group, objs in (("optimizers", self.optimizers), ("schedulers", self.schedulers),
                            ("scalers", self.scalers), ("pools", self.pools)):
            for name, saved in state[group].items():
                objs[name].load_state_dict(saved)
        for pool in self.pools.values():
            pool.images = [img.to(self.device) for img in pool.images]
        for n, v in state["epoch_loss"].items():
            self._epoch_loss[n] = v.to(self.device)
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state((rng["numpy"][0], rng["numpy"][1].numpy(), *rng["numpy"][2:]))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def save_checkpoint(self) -> Path | None:
        """Write the current state as checkpoints/step_XXXXXXXX (rank 0 only); a failed write warns.

        Skipped while the last iteration had non-finite values, so the latest checkpoint stays good.
        """
        if self.step == self._saved_step or self.nonfinite_in_row:  # never save a diverging state
            return None
        self._saved_step = self.step
        if self._sums:
            self.log()  # on every rank: the means are reduced across ranks
        if not self.dist.is_main:
            return None
        try:
            return checkpoint.save(self.out_dir / "checkpoints", f"step_{self.step:08d}", self.nets,
                                   self.state_dict(), to_yaml(self.recipe), self.recipe.train.keep_checkpoints)
        except CheckpointError as err:
            _warn(f"{err} Training goes on.")
            return None

    @classmethod
    def resume(cls, run_dir: str | Path, overrides=(), registry: Registry | None = None) -> "Trainer":
        """A trainer restored from the latest checkpoint of ``run_dir`` (recipe, weights, state).

        ``overrides`` (``key=value``) apply on top of the saved recipe, e.g. ``train.epochs=300``.

        Raises:
            CheckpointError: no checkpoint, an unsafe one, or weights that do not fit the recipe.
        """
        run_dir = Path(run_dir)
        if (run_dir / checkpoint.WEIGHTS).is_file():
            raise CheckpointError(
                f"{run_dir} is a checkpoint; resume takes its run directory ({run_dir.parent.parent}), "
                "which continues from the latest checkpoint."
            )
        ckpt = checkpoint.latest(run_dir)
        recipe_yaml, weights = checkpoint.load_weights(ckpt)
        recipe = apply_overrides(from_yaml(recipe_yaml), overrides)
        trainer = cls(recipe, out_dir=run_dir, registry=registry)
        for name, net in trainer.nets.items():
            try:
                net.load_state_dict(weights[name])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(f"{ckpt}: weights of network '{name}' do not fit the recipe ({err}).") from err
        trainer.load_state_dict(checkpoint.load_state(ckpt))
        tr = trainer.recipe.train
        if trainer._done() or trainer.epoch >= tr.epochs:
            raise RecipeError(
                f"{run_dir} already reached its end (epoch {trainer.epoch}/{tr.epochs}, iteration {trainer.step}"
                f"{'' if tr.max_steps is None else f' of train.max_steps={tr.max_steps}'}); to train longer, "
                "resume with a larger train.epochs=N (or train.max_steps=N, or train.max_steps=null)."
            )
        return trainer
