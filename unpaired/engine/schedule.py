"""LR schedules seen whole: a schedule moved to a position, its multiplier in each epoch, and the
warning for a ``train.epochs`` that does not fit the schedule (epochs at LR 0, a decay cut short).

Everything here steps the recipe's scheduler plugin itself, so it holds for any schedule that
follows the epochs, not only the built-in ``linear`` one.
"""

from __future__ import annotations

import warnings

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from unpaired.recipe.load import plugin_args
from unpaired.recipe.resolved import ResolvedRecipe


def advance(scheduler, steps: int) -> None:
    """Step ``scheduler`` ``steps`` times with no training in between (PyTorch's warning about
    stepping a schedule before its optimizer is silenced: here that is the point)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()


def multipliers(recipe: ResolvedRecipe, epochs: int) -> list[float] | None:
    """The LR multiplier of the recipe's schedule in each of its first ``epochs`` epochs.

    Returns:
        ``epochs`` floats (the LR of epoch ``e`` is the optimizer's ``lr`` times item ``e``), or
        None for a schedule that does not follow the epochs alone: ``plateau`` (it follows the
        losses) or ``interval: iteration`` (it follows the data's size).

    Raises:
        RecipeError: unknown scheduler or arguments it rejects.
    """
    sch = recipe.train.scheduler
    if sch.interval != "epoch":
        return None
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = recipe.build(recipe.scheduler, optimizer=opt)
    if isinstance(scheduler, ReduceLROnPlateau):
        return None
    values = []
    for _ in range(epochs):
        values.append(opt.param_groups[0]["lr"])
        advance(scheduler, 1)
    return values


def _epoch_list(epochs: list[int]) -> str:
    """``[17, 18, 19, 20]`` -> ``epochs 17-20``; ``[9]`` -> ``epoch 9``; ``[9, 17, 18]`` -> ``epochs 9, 17-18``."""
    spans: list[list[int]] = []
    for e in epochs:
        if spans and e == spans[-1][1] + 1:
            spans[-1][1] = e
        else:
            spans.append([e, e])
    text = ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)
    return f"epoch{'s' if len(epochs) > 1 else ''} {text}"


def schedule_warning(recipe: ResolvedRecipe) -> str | None:
    """One line when ``train.epochs`` and the LR schedule disagree, else None.

    Two cases, found by evaluating the schedule's multiplier epoch by epoch (over ten times
    ``train.epochs``, at least 1,000 epochs): epochs that train at LR 0 (past the end of a linear decay, say), and a
    schedule that reaches LR 0 only after the last epoch (its decay cut short, or never begun).
    A schedule that never reaches 0 (``step``, ``constant``) or does not follow the epochs
    (see :func:`multipliers`) gives no warning.

    Raises:
        RecipeError: unknown scheduler or arguments it rejects.
    """
    tr = recipe.train
    values = multipliers(recipe, max(10 * tr.epochs, 1000)) or []
    zero = [e for e, m in enumerate(values) if m == 0.0]
    if not zero or zero[0] == tr.epochs:
        return None
    args = ", ".join(f"{k}={v}" for k, v in plugin_args(tr.scheduler.args).items())
    if zero[0] == 0:
        return (f"the {tr.scheduler.type} schedule{f' ({args})' if args else ''} gives LR 0 from the first epoch: "
                "nothing would train; check train.scheduler.args.")
    head = (f"train.epochs={tr.epochs} but the {tr.scheduler.type} schedule{f' ({args})' if args else ''} "
            f"reaches LR 0 {'only ' if zero[0] > tr.epochs else ''}after epoch {zero[0]}")
    idle = [e + 1 for e in zero if e < tr.epochs]
    if idle:
        return (f"{head}: {_epoch_list(idle)} train{'s' if len(idle) == 1 else ''} at LR 0; lengthen the schedule "
                f"(train.scheduler.args) or set train.epochs={zero[0]}.")
    return (f"{head}: the last epoch trains at {values[tr.epochs - 1]:.2g}x the base LR, the decay cut short; "
            f"set train.epochs={zero[0]} or shorten the schedule (train.scheduler.args).")
