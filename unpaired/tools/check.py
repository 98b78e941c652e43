"""``unpaired recipe check``: every problem of a recipe at once, without training.

After the static checks (:func:`unpaired.recipe.validate.validate`) the recipe is resolved, the
dataset is opened (its training folders must exist and hold images; one training sample gives the
batch's shapes), the evaluation's plugins are built, and then the executor's own iteration runs on
the meta device (shapes only, no memory, no optimizer update): every image of every step is made and
every loss term is called on its side — a discriminator's loss on the discriminator side, the
generator's on the generator side — and must return a scalar. That finds what only a forward pass
shows (a U-Net whose down-samplings do not fit the crop size, an adversarial plugin that raises or
returns a map) before the first training iteration would.

A loss that cannot run on the meta device (kornia's SSIM builds its window on the CPU) is called
once more on the CPU, on zeros of the same shapes, with copies of the modules it uses.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from unpaired.data.build import build_dataset, training_pairs
from unpaired.data.pairs import collate_pairs
from unpaired.engine.build import build_network, too_few_domain_heads
from unpaired.engine.executor import Executor
from unpaired.engine.schedule import schedule_warning
from unpaired.errors import Problem, RecipeError, UnpairedError, warn
from unpaired.plugin.registry import Registry, default_registry
from unpaired.recipe.plan import StepPlan, Term, idle_networks_warning
from unpaired.recipe.resolved import ResolvedRecipe, resolve
from unpaired.recipe.validate import validate
from unpaired.runs.init_from import init_weights

#: What a plugin raises when an operation has no meta-device kernel.
NOT_ON_META = (RuntimeError, NotImplementedError, TypeError)


class _ImageFailed(Exception):
    """An image of the graph could not be made (names it)."""


class DryRun(Executor):
    """The executor on the meta device: each step's images and loss terms, once, no update."""

    def __init__(self, recipe: ResolvedRecipe):
        with torch.device("meta"):  # the plugins' own tensors too: no memory for weights
            super().__init__(recipe, device="meta")
        self.problems: list[Problem] = []

    def _make(self, names: list[str], inputs: dict, cache: dict) -> None:
        try:
            super()._make(names, inputs, cache)
        except (ValueError, RuntimeError, TypeError, NotImplementedError) as err:
            node = self.graph.nodes[names[0]]
            sizes = ", ".join(str(tuple(inputs[i].shape)) for i in node.inputs)
            raise _ImageFailed(Problem(f"images.{names[0]}", "forward-failed",
                                       f"{node.describe()} fails on {sizes}: {err}")) from err

    def term_value(self, plan: StepPlan, term: Term, images: dict, batch: dict) -> Tensor:
        try:
            return super().term_value(plan, term, images, batch)
        except NOT_ON_META as err:
            if isinstance(err, TypeError) and "meta" not in str(err).lower():
                raise
            return self._on_cpu(plan, term, images, batch)

    def _on_cpu(self, plan: StepPlan, term: Term, images: dict, batch: dict) -> Tensor:
        """The term on the CPU: copies of its modules (zero weights), zeros for its images."""
        cpu = Executor.__new__(Executor)
        cpu.nets = {n: _on_cpu(m) for n, m in self.nets.items()
                    if n in (term.network, term.discriminator, *term.networks)}
        cpu.fwd, cpu.pools, cpu.context, cpu.augments = cpu.nets, {}, self.context, {}
        cpu.losses = {(plan.name, term.name): _on_cpu(self.losses[plan.name, term.name])}
        cpu.device = torch.device("cpu")
        zeros = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in images.items()}
        return Executor.term_value(cpu, plan, term, zeros, zeros)

    def checked_value(self, plan: StepPlan, term: Term, images: dict, batch: dict, reports: dict) -> Tensor:
        try:
            value = super().checked_value(plan, term, images, batch, reports)
        except RecipeError as err:
            self.problems.append(Problem.of(err, term.where, "not-scalar"))
        except Exception as err:  # the loss plugin itself failed: say how
            self.problems.append(Problem(term.where, "loss-failed", f"the loss failed on the dry run: "
                                                                    f"{type(err).__name__}: {err}"))
        else:
            if value.device.type == "meta":
                return value
        return torch.zeros((), device="meta")  # the other terms are checked too

    def check(self, batch: dict[str, Tensor]) -> list[Problem]:
        """Run every step once (whatever its ``every``) on ``batch`` (meta tensors); the problems."""
        cache = {k: batch[k] for k in self.graph.data}
        live: set = set()
        for plan in self.plans:
            try:
                self.step_losses(plan, cache, batch, nullcontext(), live)
            except _ImageFailed as failed:
                return [*self.problems, failed.args[0]]
        return self.problems


def _on_cpu(module: nn.Module) -> nn.Module:
    """A CPU copy of a meta module, its weights zeros (only shapes matter here)."""
    module = copy.deepcopy(module).to_empty(device="cpu")
    with torch.no_grad():
        for t in module.state_dict().values():
            t.zero_()
    return module


def _batch(recipe: ResolvedRecipe, pairs) -> dict[str, Tensor]:
    """A training batch's shapes, from the first training sample, as meta tensors."""
    sample = collate_pairs([pairs[0]] * recipe.data.batch_size)
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") if isinstance(v, Tensor) else v
            for k, v in sample.items()}


def check_all(recipe: DictConfig, registry: Registry | None = None) -> list[Problem]:
    """All problems of ``recipe``: static checks, then (if those pass) the data, the evaluation's
    plugins, a meta-device dry run of the executor's iteration, and the weights ``init_from``
    names (there, and fitting the networks' shapes).

    A ``train.epochs`` that does not fit the LR schedule is printed as a warning (stderr), not
    returned: such a recipe trains (:func:`unpaired.engine.schedule.schedule_warning`).

    Returns:
        The problems, each a :class:`~unpaired.errors.Problem` (a ``str`` with ``key`` and ``code``).
    """
    reg = registry or default_registry()
    problems = validate(recipe, reg)
    if problems:
        return problems
    try:
        resolved = resolve(recipe, reg)
    except RecipeError as err:  # init_from names no checkpoint, or another SHA-256
        return err.problems or [Problem.of(err, "init_from")]
    for line in (schedule_warning(resolved), idle_networks_warning(resolved)):  # warnings: the recipe can train
        if line:
            warn(line)
    batch = None
    try:  # the data: folders exist and hold images, sizes fit
        data = build_dataset(resolved)
        batch = _batch(resolved, training_pairs(data, resolved.seed, resolved.data.second_sample))
    except UnpairedError as err:
        problems.append(Problem.of(err, "data", "bad-data"))
    if resolved.eval.metrics and not problems:  # the judge's plugins and weights, the test images
        from unpaired.evaluation.evaluator import Evaluator

        try:
            Evaluator(resolved, device="cpu", data=data)
        except UnpairedError as err:
            problems.append(Problem.of(err, "eval", "bad-eval"))
    built = {}
    with torch.device("meta"):
        for name, net in resolved.networks.items():
            try:
                built[name] = build_network(resolved, net, init=False)
            except (UnpairedError, ValueError, RuntimeError, TypeError) as err:
                problems.append(Problem(f"networks.{name}", "build-failed", f"cannot be built: {err}"))
    if batch is not None:  # the data built: as many domain heads as domains
        problems += too_few_domain_heads(data, built)
    if problems:
        return problems
    try:
        dry = DryRun(resolved)
    except UnpairedError as err:  # a loss or optimizer that cannot be built
        return [Problem.of(err, "steps", "build-failed")]
    problems += dry.check(batch)
    if resolved.init_from is not None:  # the source's weights fit these networks' shapes
        try:
            init_weights(resolved, dry.nets)
        except RecipeError as err:
            problems.append(Problem.of(err, "init_from", "does-not-fit"))
    return problems
