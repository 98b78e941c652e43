"""The training loop: epochs over the data, resume, signals, checkpoints, and the training events.

The loop drives an :class:`unpaired.engine.executor.Executor` (which runs one iteration: every due
step of the recipe on one batch) over the recipe's data and fires the events of
:mod:`unpaired.plugin.hookspecs` — after each iteration, at each epoch's end, around checkpoints,
for evaluation and at the end. Logging, sample grids and evaluation are handlers of those events
(:mod:`unpaired.loop.hooks`), like any plugin's. Checkpoints are the loop's: one writer
(:meth:`Trainer.save_checkpoint`) for the iteration checkpoints and ``best``, after every handler
of the iteration has run.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm import tqdm

from unpaired.data.build import build_dataset, training_pairs
from unpaired.data.check import check_training_files
from unpaired.data.pairs import EpochSampler, batch_size, collate_pairs
from unpaired.engine.build import too_few_domain_heads
from unpaired.engine.executor import Executor
from unpaired.engine.schedule import schedule_warning
from unpaired.errors import CheckpointError, DataError, RecipeError, TrainingDiverged, warn
from unpaired.loop.hooks import (Evaluation, Events, JsonlLog, LossLog, ProgressPostfix, Report, RunInfo, SampleGrids,
                                 TensorBoardLog)
from unpaired.loop.hooks.logs import term_losses
from unpaired.loop.resume import edited_recipe, fixed_changes
from unpaired.loop.timing import STEP, LoopTimer
from unpaired.plugin.diagnostics import collecting
from unpaired.plugin.registry import Registry, Spec
from unpaired.recipe.plan import idle_networks_warning
from unpaired.recipe.load import apply_overrides
from unpaired.recipe.resolved import ResolvedRecipe, resolve, spec
from unpaired.runs import checkpoint
from unpaired.runs.init_from import init_weights
from unpaired.runs.rundir import RunDir, RunLock, is_checkpoint, load
from unpaired.runtime import distributed
from unpaired.runtime.terminal import interactive

__all__ = ["FitResult", "Trainer", "TrainingDiverged"]


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        iteration, epoch: iterations and whole epochs done.
        interrupted: the signal number that stopped training early (SIGINT, SIGTERM), or None.
        history: every log record (``{"iteration", "epoch", "time", "<step>/<term>": mean loss,
            "lr/<step>": lr, "eval/<metric>": value}``), also in ``out_dir/log.jsonl``.
        out_dir: the run directory.
        error: the error that stopped training, or None.
    """

    iteration: int
    epoch: int
    interrupted: int | None
    history: list[dict] = field(default_factory=list)
    out_dir: Path | None = None
    error: str | None = None

    @property
    def losses(self) -> dict:
        """The last loss record (empty before the first)."""
        losses = [r for r in self.history if any("/" in k and not k.startswith(("lr/", "eval/")) for k in r)]
        return losses[-1] if losses else {}


def loader_workers(requested: int) -> int:
    """``data.num_workers``, at most the CPUs this process may use (more workers than cores only
    compete with the training step; torch warns, and may stall): a warning says when it is capped."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if requested > cpus:
        warn(f"data.num_workers={requested}, but this process may use {cpus} CPU(s): loading with {cpus} worker(s) "
             f"(set data.num_workers={cpus} or fewer to silence this).")
    return min(requested, cpus)


class Trainer:
    """Train the networks of a recipe.

    Args:
        recipe: a recipe from :func:`unpaired.recipe.load.load_recipe` (resolved here, which
            checks it), or a :class:`~unpaired.recipe.resolved.ResolvedRecipe`.
        out_dir: run directory (default ``recipe.out_dir`` or ``runs/<name>``; its layout:
            :class:`~unpaired.runs.rundir.RunDir`).
        registry: component registry (default: the entry-point registry).
        hooks: extra event handlers for this run (objects with ``@hookimpl`` methods, see
            :mod:`unpaired.plugin.hookspecs`), besides the built-in ones, the recipe's
            ``handlers:`` and the registry's plugins.

    Raises:
        RecipeError: the recipe has problems (all listed), or asks for an unavailable device.
        DataError: the dataset cannot be read, or training files fail the check of
            :func:`unpaired.data.check.check_training_files` (before any network is built).
    """

    def __init__(self, recipe: DictConfig | ResolvedRecipe, out_dir: str | Path | None = None,
                 registry: Registry | None = None, hooks=()):
        self.dist = distributed.setup()
        self.recipe = resolve(recipe, registry, local_rank=self.dist.local_rank)
        self.registry, self.device = self.recipe.registry, self.recipe.device
        # The data before the networks: a recipe mistake or a bad image file stops in seconds.
        self.data = build_dataset(self.recipe)
        self.pairs = training_pairs(self.data, self.recipe.seed, self.recipe.data.second_sample)
        check_training_files(self.pairs, self.recipe.data.on_bad_file)
        self.executor = Executor(self.recipe, dist=self.dist)
        problems = too_few_domain_heads(self.data, self.executor.nets)
        if problems:
            raise RecipeError.listing(problems)
        self.run = RunDir(out_dir or self.recipe.config.out_dir or f"runs/{self.recipe.name}")
        self.sampler = EpochSampler(len(self.pairs), self.recipe.seed, rank=self.dist.rank,
                                    world_size=self.dist.world_size)
        self.epoch = self.iteration = self.epoch_iteration = 0  # completed epochs / iterations / iterations this epoch
        self.epoch_samples = 0  # samples this rank took this epoch (the resume position, whatever the batch size)
        self.samples = 0  # samples this rank took in this session (for the timings' pairs/s)
        self.session_start = 0  # the iteration this session's fit() started from (after a resume, not 0)
        self.timer = LoopTimer()  # where this session's time goes (timer.table(), run.json "timings")
        self.history: list[dict] = []  # the log records, also written to log.jsonl
        self.bar = self.loader = None
        self._stop_signal: int | None = None
        self._epoch_head: str | None = None  # the epoch's line for a log, until its losses are flushed
        self._lock = None  # the run directory's lock, held by the main rank while it writes there
        self._saved_iteration = 0
        self._evaluated_iteration = -1
        tr = self.recipe.train
        handlers = [LossLog(), JsonlLog(), TensorBoardLog(), ProgressPostfix(), RunInfo()]
        if self.recipe.eval.metrics and tr.eval_every is not None:
            handlers.append(Evaluation(self))
        if tr.report:
            handlers.append(Report())
        self.sample_grids = SampleGrids(self) if self.recipe.samples and self.is_main else None
        if self.sample_grids:
            handlers.append(self.sample_grids)
        named = {name: self.recipe.build(spec("handler", entry, f"handlers.{name}"))
                 for name, entry in self.recipe.config.handlers.items()}
        if self.recipe.config.ema is not None:  # the recipe's averaged networks: the ema handler, state key "ema"
            ema = self.recipe.config.ema
            named["ema"] = self.recipe.build(Spec("handler", "ema", MappingProxyType(
                {"networks": list(ema.networks), "decay": ema.decay, "start": ema.start, "warmup": ema.warmup}), "ema"))
        self.ema = named.get("ema") if self.recipe.config.ema is not None else None
        self.events = Events(self.registry, [*handlers, *hooks], named, self.timer)
        self.hook = self.events.hook

    @property
    def out_dir(self) -> Path:
        """The run directory's path (``self.run`` knows its layout)."""
        return self.run.path

    @property
    def nets(self) -> dict:
        """The networks by recipe name (the executor's)."""
        return self.executor.nets

    def inference_nets(self) -> dict:
        """The networks that evaluation and sample grids use: the trained ones, with the averages
        of the recipe's ``ema`` section in place of the networks it averages; a discriminator without
        the augmentation its recipe puts before it in training."""
        if self.ema is None or not self.ema.averages:
            return self.executor.unaugmented
        return {**self.executor.unaugmented, **{n: a.module for n, a in self.ema.averages.items()}}

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0, or the only process)."""
        return self.dist.is_main

    @property
    def epoch_complete(self) -> bool:
        """Whether this rank has taken every sample of the current epoch (its end is due)."""
        return self.epoch_samples >= self.sampler.epoch_length

    @property
    def epoch_label(self) -> str:
        """``epoch E/N`` as the progress bar counts: E is the epoch in progress (1-based), or the one
        just finished; N is ``train.epochs``. (``epoch`` itself counts whole epochs done.)"""
        return f"epoch {self.epoch + (self.epoch_samples > 0)}/{self.recipe.train.epochs}"

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train until ``train.epochs`` (or ``train.max_iterations``); return the iterations done and the log.

        SIGINT/SIGTERM finish the current iteration, write a checkpoint and stop (``interrupted``
        in the result). Checkpoints go out every ``checkpoint_every`` iterations, at each epoch's
        end and at the end.

        A new run with ``init_from`` first loads its source's weights (:meth:`load_init_weights`).
        A ``train.epochs`` that does not fit the LR schedule is warned about
        (:func:`unpaired.engine.schedule.schedule_warning`).

        Raises:
            DataError: a sample could not be read (a checkpoint of the work done is written first).
            TrainingDiverged: losses stayed non-finite (names the last good checkpoint).
            RecipeError: ``init_from`` names weights that do not fit.
        """
        tr = self.recipe.train
        if self.recipe.init_from is not None and self.iteration == 0:  # a resumed run has its own weights
            self.load_init_weights()
        for line in (schedule_warning(self.recipe), idle_networks_warning(self.recipe)) if self.is_main else ():
            if line:
                warn(line)
        self._refuse_out_dir()  # before the lock, which creates the folder
        self._hold_lock()
        try:
            self._prepare_out_dir()
        except BaseException:
            self._release_lock()
            raise
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        error = None
        self.session_start = self.iteration
        self.timer.start()
        try:
            self.hook.unpaired_train_start(trainer=self)
            while self.epoch < tr.epochs and not self._done():
                self._run_epoch()
            self.save_checkpoint()
            self._say_epoch()  # an epoch stopped early (max_iterations, a signal)
            if self.executor.nonfinite_in_row and self.run.latest(missing_ok=True) is None:
                raise TrainingDiverged(f"training ended in a run of {self.executor.nonfinite_in_row} iteration(s) "
                                       "with non-finite values (warnings above name the terms), so nothing was saved.",
                                       code="diverged")
            if tr.eval_every is not None and self._stop_signal is None and self._evaluated_iteration != self.iteration:
                self.evaluate()
        except DataError as err:  # keep the work done so far, then say what to fix
            error = err
            saved = self.save_checkpoint()
            reason = str(err).strip().splitlines()[-1]  # a worker's error carries its traceback
            if saved is None and self.run.latest(missing_ok=True) is None:  # nothing to resume
                raise DataError(f"{reason} Training stopped before its first checkpoint: fix the data, then "
                                "start again.", key=err.key, code=err.code) from err
            where = f"a checkpoint at iteration {self.iteration} is in {saved.parent}" if saved else "no iteration was lost"
            raise DataError(f"{reason} Training stopped; {where}: fix the data, then resume with "
                            f"'unpaired train --resume {self.out_dir}'.", key=err.key, code=err.code) from err
        except TrainingDiverged as err:
            error = err
            last = self.run.latest(missing_ok=True)
            advice = (f"The last good checkpoint is {last}; lower the learning rate or check the data, then resume "
                      "from it." if last else "No checkpoint was written yet; lower the learning rate or check the "
                      "data, then start again.")
            raise TrainingDiverged(f"{err} {advice}", code=err.code) from err
        except BaseException as err:
            error = err
            raise
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            result = FitResult(self.iteration, self.epoch, self._stop_signal, self.history, self.out_dir,
                               None if error is None else f"{type(error).__name__}: {error}")
            try:
                self.hook.unpaired_train_end(trainer=self, result=result)
            except Exception as end_error:
                if error is None:
                    raise
                # the error that stopped training is the one to show; a full disk fails both
                warn(f"ending the run after the error below failed too: {end_error}")
            finally:
                self.timer.stop()
                self._release_lock()
        return result

    def timing_table(self) -> str:
        """Where this session's wall time went (:meth:`unpaired.loop.timing.LoopTimer.table`): its
        iterations, and training pairs per second over all ranks."""
        return self.timer.table(self.iteration - self.session_start, self.samples * self.dist.world_size)

    def _done(self) -> bool:
        tr = self.recipe.train
        return self._stop_signal is not None or (tr.max_iterations is not None and self.iteration >= tr.max_iterations)

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum
        tqdm.write(f"{signal.Signals(signum).name} received: stopping after this iteration and writing a checkpoint.")

    def _run_epoch(self) -> None:
        tr, data = self.recipe.train, self.recipe.data
        self.sampler.set_epoch(self.epoch, start=self.epoch_samples)
        if self.loader is None:  # one loader for the run: its workers live on from epoch to epoch
            # its own generator: each pass draws a worker seed, which must not move torch's global RNG
            workers = loader_workers(data.num_workers)
            self.loader = DataLoader(self.pairs, batch_size=data.batch_size, sampler=self.sampler,
                                     collate_fn=collate_pairs, num_workers=workers, persistent_workers=workers > 0,
                                     pin_memory=self.device.type == "cuda", generator=torch.Generator())
        loader = self.loader
        # updated by hand after each iteration: a bar wrapping the loader misses the last one when
        # max_iterations breaks out
        self.bar = tqdm(desc=f"epoch {self.epoch + 1}/{tr.epochs}", disable=not (self.is_main and interactive()),
                        initial=self.epoch_iteration, total=self.epoch_iteration + len(loader), dynamic_ncols=True)
        try:
            for batch in self.timer.iterate(loader):
                with self.timer.section(STEP):
                    losses = self.executor.run_iteration(batch, self.iteration)
                self.iteration += 1
                self.epoch_iteration += 1
                n = batch_size(batch)
                self.epoch_samples += n
                self.samples += n
                self.bar.update()
                with collecting(losses, device=self.device):  # what handlers report is logged with the losses
                    self.hook.unpaired_after_step(trainer=self, losses=losses)
                # after every handler: an EMA updated at this iteration is in its checkpoint; an
                # epoch's last iteration is saved once the epoch has ended (with its stepped schedules)
                if self.iteration % tr.checkpoint_every == 0 and not self.epoch_complete:
                    self.save_checkpoint()
                if self._done():
                    break
        finally:
            if self.bar.disable and self.is_main:  # a log, not a terminal: one line for the epoch's pass,
                # said once the checkpoint that ends it has flushed the losses (fit() says a stopped one's)
                self._epoch_head = (f"{self.epoch_label}: {self.epoch_iteration}/{self.bar.total} iterations "
                                    f"(iteration {self.iteration}), {self.timer.wall:.1f} s")
            self.bar.close()
            self.bar = None
        if not self.epoch_complete:  # stopped early: the epoch goes on after a resume
            return
        self.executor.end_epoch(self.epoch_iteration)  # this whole epoch's iterations, a resumed part included
        self.epoch += 1
        self.epoch_iteration = self.epoch_samples = 0
        self.hook.unpaired_epoch_end(trainer=self, epoch=self.epoch)
        self.save_checkpoint()
        self._say_epoch()
        if tr.eval_every is not None and self.epoch % tr.eval_every == 0:
            self.evaluate()

    def _say_epoch(self) -> None:
        """``epoch 2/16: 125/125 iterations (iteration 250), 38.1 s; D_A 0.41, ...``: the epoch's
        pass as a progress bar would end, with the losses logged last (in a log file only)."""
        if self._epoch_head is None:
            return
        last = next((r for r in reversed(self.history) if term_losses(r)), {})
        losses = ", ".join(f"{k} {v:.3f}" for k, v in term_losses(last).items())
        tqdm.write(self._epoch_head + (f"; {losses}" if losses else ""), file=sys.stderr)
        self._epoch_head = None

    def evaluate(self) -> dict[str, float]:
        """Run the ``unpaired_evaluate`` handlers now and log their metrics (``eval/<name>``)."""
        self._evaluated_iteration = self.iteration
        metrics: dict[str, float] = {}
        for result in self.hook.unpaired_evaluate(trainer=self):
            metrics.update(result or {})
        if metrics:
            record = {"iteration": self.iteration, "epoch": self.epoch, "time": time.time(),
                      **{f"eval/{k}": float(v) for k, v in metrics.items()}}
            self.hook.unpaired_log(trainer=self, record=record)
        return metrics

    # -- run directory and checkpoints ------------------------------------------------------------
    def load_init_weights(self) -> None:
        """Load the weights ``recipe.init_from`` names into their networks (on every rank, from the
        same file); the recipe already records the resolved checkpoint, the networks and the
        SHA-256 of its weights (:func:`unpaired.recipe.resolved.resolve`).

        Raises:
            RecipeError: weights that are missing or do not fit (:func:`unpaired.runs.init_from.init_weights`).
        """
        for name, state in init_weights(self.recipe, self.nets).items():
            if state:
                self.nets[name].load_state_dict(state)

    def _hold_lock(self) -> None:
        """Become the run directory's one writer (the main rank); a second process is refused."""
        if self.is_main and self._lock is None:
            try:
                self._lock = self.run.lock()
            except OSError as err:
                raise CheckpointError(f"{self.out_dir}: cannot write to the run directory ({err}; "
                                      f"{checkpoint.free_space(self.out_dir.parent)}). Free some space, fix its "
                                      "permissions, or pass another --out directory.", key=str(self.out_dir),
                                      code="not-writable") from err

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _refuse_out_dir(self, new_dir: bool = False) -> None:
        """Refuse a run directory that holds files no run wrote (a new run's, or a fork's:
        ``new_dir``), or that lies inside the training data (its sample grids would become training
        images); nothing is created."""
        if not self.is_main:
            return
        foreign = self.run.foreign_files() if self.iteration == 0 or new_dir else []
        if foreign:
            raise CheckpointError(
                f"{self.out_dir} holds {', '.join(foreign)}, which no run wrote (there is no run.json): training "
                "would replace them. Pass another --out directory (e.g. runs/NAME).", key=str(self.out_dir),
                code="user-files")
        root = self.recipe.data.args.get("root")
        if isinstance(root, str) and self.out_dir.resolve().is_relative_to(Path(root).resolve()):
            raise CheckpointError(
                f"{self.out_dir} is inside the dataset {root}: its sample grids and translations would become "
                "training images of later runs. Pass a --out outside the dataset.", key=str(self.out_dir),
                code="inside-data")

    def _prepare_out_dir(self) -> None:
        """Refuse a run directory that holds another run (checked under the lock); write the recipe."""
        if not self.is_main:
            return
        existing = self.run.latest(missing_ok=True) if self.out_dir.is_dir() else None
        if existing is not None and self.iteration == 0:
            raise CheckpointError(
                f"{self.out_dir} already holds a run (latest checkpoint {existing.name}). Continue it with "
                f"'unpaired train --resume {self.out_dir}', or pass another --out directory.", key=str(self.out_dir),
                code="run-exists")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".write-test"
            probe.write_bytes(b"\0" * 1024 * 1024)
            probe.unlink()
            if self.iteration == 0:  # a resumed run's recipe.yaml follows its checkpoints (_write_recipe_file)
                checkpoint.atomic_write_text(self.run.recipe_file, self.recipe.yaml)
                self.run.cut_log(0)  # a run killed before its first checkpoint, trained again: its log goes
        except OSError as err:
            raise CheckpointError(
                f"{self.out_dir}: cannot write to the run directory ({err}). Free disk space, fix its "
                "permissions, or pass another --out directory.", key=str(self.out_dir), code="not-writable"
            ) from err

    def state_dict(self) -> dict:
        """Everything but the weights that continuing exactly needs (safe for weights_only loading):
        counters, RNG states, the executor's optimizers, schedules, scalers and pools."""
        np_state = np.random.get_state()
        return {
            "counters": {"epoch": self.epoch, "iteration": self.iteration, "epoch_iteration": self.epoch_iteration,
                         "epoch_samples": self.epoch_samples, "epoch_length": self.sampler.epoch_length},
            "executor": self.executor.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    def _pools_by_rank(self) -> list[dict]:
        """Every rank's image pools (each rank keeps its own), for rank 0's checkpoint."""
        mine = {}
        for name, pool in self.executor.pools.items():
            state = pool.state_dict()
            mine[name] = {**state, "images": [img.cpu() for img in state["images"]]}
        return distributed.gather_objects(mine)

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (each rank its own image pools) and the handlers' states."""
        by_rank = state["executor"].get("pools_by_rank")
        if by_rank is not None and len(by_rank) == self.dist.world_size:  # each rank resumes its own pools
            state["executor"]["pools"] = by_rank[self.dist.rank]
        c = state["counters"]
        self.epoch, self.iteration, self.epoch_iteration = c["epoch"], c["iteration"], c["epoch_iteration"]
        self.epoch_samples = c["epoch_samples"]
        self._saved_iteration = self.iteration  # this state is on disk already
        self.executor.load_state_dict(state["executor"])
        self._follow_the_data(c.get("epoch_length"))
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state((rng["numpy"][0], rng["numpy"][1].numpy(), *rng["numpy"][2:]))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.events.load_state_dicts(self, state.get("handlers", {}))

    def _follow_the_data(self, saved_length: int | None) -> None:
        """A resume on more or fewer training pairs than the checkpoint's epoch had (images added
        or removed): the epoch in progress ends here (its schedules step) and the next one draws
        from the data as it is now, with a note. (Checkpoints before format unpaired/2 do not
        record the length: a position past the new epoch's end is how they show it.)"""
        length = self.sampler.epoch_length
        if saved_length == length or (saved_length is None and self.epoch_samples <= length):
            return
        was = f"{saved_length} pairs" if saved_length is not None else f"at least {self.epoch_samples} pairs"
        note = f"the training data now gives {length} pairs an epoch{' per rank' if self.dist.enabled else ''}, the run's had {was}"
        if self.epoch_samples == 0:
            warn(f"{note}: epoch {self.epoch + 1} uses the data as it is now.")
            return
        warn(f"{note}: epoch {self.epoch + 1} ends at iteration {self.iteration} and training goes on with epoch "
             f"{self.epoch + 2} on the data as it is now.")
        with warnings.catch_warnings():  # the optimizers stepped in the session that saved the state
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
            self.executor.end_epoch(self.epoch_iteration)
        self.epoch += 1
        self.epoch_iteration = self.epoch_samples = 0

    def save_checkpoint(self, name: str | None = None, extra: dict[str, str] | None = None) -> Path | None:
        """Write a checkpoint of the current state: the one writer of every checkpoint.

        Called on every rank (``unpaired_before_checkpoint`` fires on each, and the image pools of
        every rank are gathered); rank 0 writes. The weights, the training state, the handlers'
        states (``unpaired_state_dict``) and weight sets (``unpaired_weight_sets``) go in.

        Args:
            name: None for the iteration's checkpoint (``iter_XXXXXXXX``, made ``latest``, the
                oldest pruned beyond ``train.keep_checkpoints``; skipped when already written or
                while the last iteration had non-finite values, so that the latest stays good), or
                a side checkpoint's name such as ``best`` (``latest`` left alone).
            extra: file name -> text written inside the checkpoint (``best``'s ``eval.json``).

        Returns:
            The checkpoint written (rank 0), or None.

        Raises:
            CheckpointError: the write failed (a full disk, say): it names the checkpoint and the free
                space, and the previous checkpoint stays ``latest``.
        """
        iteration_checkpoint = name is None
        if iteration_checkpoint:
            if self.iteration == self._saved_iteration or self.executor.nonfinite_in_row:
                return None
            self._saved_iteration = self.iteration
        self.hook.unpaired_before_checkpoint(trainer=self)  # on every rank: e.g. the log means are reduced
        pools = self._pools_by_rank() if self.dist.enabled else None  # a collective: every rank takes part
        if not self.is_main:
            return None
        state = self.state_dict()
        if pools is not None:
            state["executor"]["pools_by_rank"] = pools
        state["handlers"] = self.events.state_dicts(self)
        with self.timer.section("checkpoint (write)"):  # a write that fails stops training (CheckpointError)
            path = checkpoint.write(self.run.checkpoints, name or checkpoint.iteration_name(self.iteration),
                                    self.executor.modules(), state, self.recipe.yaml,
                                    self.recipe.train.keep_checkpoints, make_latest=iteration_checkpoint,
                                    extra=extra, weight_sets=self.events.weight_sets(self))
        if iteration_checkpoint:
            self._write_recipe_file()
        self.hook.unpaired_checkpoint_saved(trainer=self, path=path)
        return path

    def _write_recipe_file(self) -> None:
        """recipe.yaml as the latest checkpoint's recipe: a resume's overrides reach it with the
        resumed run's first checkpoint, so a run killed before that resumes as it was (its file
        still matches its checkpoint, and is not taken for the user's edit)."""
        if self.run.recipe_file.is_file() and self.run.recipe_file.read_text() == self.recipe.yaml:
            return
        try:
            checkpoint.atomic_write_text(self.run.recipe_file, self.recipe.yaml)
        except OSError as err:
            raise CheckpointError(f"{self.run.recipe_file}: cannot write the recipe ({err}; "
                                  f"{checkpoint.free_space(self.out_dir)}). The checkpoint before it is complete: "
                                  "free some space, then resume.", key=str(self.run.recipe_file),
                                  code="write-failed") from err

    @classmethod
    def resume(cls, run_dir: str | Path, overrides=(), registry: Registry | None = None, hooks=(),
               out_dir: str | Path | None = None) -> "Trainer":
        """A trainer restored from the latest checkpoint of ``run_dir`` (recipe, weights, state).

        ``overrides`` (``key=value``) apply on top of the saved recipe from the first resumed
        iteration: e.g. ``train.epochs=300``, an optimizer's ``lr`` or ``betas`` (set in the
        restored optimizers), a schedule's args (the schedule is rebuilt at the restored epoch).
        Changes a restored run cannot take (its networks, images, steps' networks: see
        :func:`unpaired.loop.resume.fixed_changes`) are refused.

        ``out_dir`` other than ``run_dir`` forks the run: ``out_dir`` starts as a copy of the
        latest checkpoint and of the log up to it, and training goes on there; ``run_dir`` is
        only read. With ``out_dir``, ``run_dir`` may also be one checkpoint of a run (e.g. an
        earlier one, when the latest is damaged, or ``best``).

        Raises:
            CheckpointError: no checkpoint (a run stopped before its first one: says how to start
                it again), a damaged or unsafe one (names an earlier checkpoint to fork from),
                weights that do not fit the recipe, or an ``out_dir`` that already holds a run.
            RecipeError: the run already reached its end (says which value to raise), or
                overrides a restored run cannot take (names the keys).
        """
        run_dir = Path(run_dir)
        is_ckpt = is_checkpoint(run_dir)
        if is_ckpt and (out_dir is None or Path(out_dir).resolve() == run_dir.parent.parent.resolve()):
            raise CheckpointError(
                f"{run_dir} is a checkpoint; resume takes its run directory ({run_dir.parent.parent}), which "
                "continues from the latest checkpoint, or continues from this one in a new directory (--out NEW_RUN).",
                key=str(run_dir), code="is-checkpoint")
        out_dir = Path(out_dir or run_dir)
        fork = out_dir.resolve() != run_dir.resolve()
        if fork and RunDir(out_dir).holds_run():
            raise CheckpointError(f"{out_dir} already holds a run; a fork of {run_dir} needs a new directory: "
                                  "pass another --out.", key=str(out_dir), code="run-exists")
        source = RunDir(run_dir)
        if not fork and distributed.setup().is_main:
            RunLock.refuse_if_held(run_dir)  # a run another process writes is named before anything of it is read
        if not is_ckpt and source.latest(missing_ok=True) is None and source.recipe_file.is_file():
            raise CheckpointError(f"{run_dir} stopped before its first checkpoint: there is nothing to resume. "
                                  f"Train it again from the start: unpaired train {source.recipe_file} --out {run_dir}",
                                  key=str(run_dir), code="no-checkpoint")
        try:
            loaded = load(run_dir, weights="raw")  # training continues from the trained weights, never an average
            state = loaded.state()
        except CheckpointError as err:
            ckpt = checkpoint.latest(run_dir, missing_ok=True)
            done = checkpoint.iterations(ckpt.parent) if ckpt and not is_ckpt else []
            earlier = done[:done.index(ckpt)] if ckpt in done else done
            if not earlier:
                raise
            raise CheckpointError(f"{err} An earlier checkpoint of the run may be intact: continue from it in a new "
                                  f"directory with 'unpaired train --resume {earlier[-1]} --out NEW_RUN'.",
                                  key=err.key, code=err.code) from err
        saved = loaded.recipe
        recipe = apply_overrides(saved, overrides)
        fixed = fixed_changes(saved, recipe)
        if fixed:
            raise RecipeError(
                f"cannot change {', '.join(fixed)} when resuming {run_dir}: a restored run keeps its networks, "
                f"images, steps, parameter groups and seed. Start a new run from its weights instead (init_from.path={run_dir}).",
                key=fixed[0], code="fixed-on-resume")
        edited = edited_recipe(source.recipe_file, saved, recipe) if not is_ckpt else []
        if edited:  # resume trains the checkpoint's recipe: an edit of the file would be lost, then overwritten
            raise RecipeError(
                f"{source.recipe_file} was edited since its checkpoint ({', '.join(edited[:5])}"
                f"{' ...' if len(edited) > 5 else ''}); resume trains the checkpoint's recipe with key=value overrides. "
                f"Give the changes as overrides, e.g. 'unpaired train --resume {run_dir} "
                f"{edited[0]}=VALUE', or undo the edit.", key=str(source.recipe_file), code="edited-recipe")
        if fork and recipe.out_dir is not None:
            recipe.out_dir = str(out_dir)
        dist = distributed.setup()  # the recipe is resolved for this rank's device, without init_from
        resolved = resolve(recipe, registry, local_rank=dist.local_rank, new_run=False)
        trainer = cls(resolved, out_dir=out_dir, registry=registry, hooks=hooks)
        trainer.executor.load_weights(loaded.weights, str(loaded.checkpoint))
        trainer.load_state_dict(state)
        trainer.executor.follow_recipe(resolve(saved, registry, checked=False))
        tr = trainer.recipe.train
        if trainer._done() or trainer.epoch >= tr.epochs:
            raise RecipeError(
                f"{run_dir} already reached its end ({trainer.epoch_label}, iteration {trainer.iteration}"
                f"{'' if tr.max_iterations is None else f' of train.max_iterations={tr.max_iterations}'}); to train "
                "longer, resume with a larger train.epochs=N (or train.max_iterations=N, or train.max_iterations=null).",
                key="train.epochs", code="finished")
        if fork:
            trainer._refuse_out_dir(new_dir=True)  # before anything is copied there
        trainer._hold_lock()  # before touching the run directory: its log is cut, a fork written
        if fork and trainer.is_main:
            try:
                trainer.run.fork_from(loaded.checkpoint, trainer.iteration)
            except OSError as err:  # shutil.Error (an OSError) lists every file: say the first reason
                trainer._release_lock()  # the trainer is not returned: nothing else would release it
                reason = err.args[0][0][-1] if isinstance(err, shutil.Error) and err.args and err.args[0] else err
                raise CheckpointError(f"forking {loaded.checkpoint} into {out_dir} failed ({reason}; "
                                      f"{checkpoint.free_space(out_dir)}). Free some space, then fork again.",
                                      key=str(out_dir), code="write-failed") from err
        elif trainer.is_main:  # what a killed run logged after its last checkpoint is logged again
            trainer.run.cut_log(trainer.iteration)
        return trainer
