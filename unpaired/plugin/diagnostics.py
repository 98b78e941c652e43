"""Diagnostics: named values that losses and training-event handlers report, logged with the losses.

As StyleGAN2-ADA's ``training_stats.report(name, value)`` (NVlabs/stylegan2-ada-pytorch,
``torch_utils/training_stats.py``): anywhere in a loss's ``forward``, ``generator_loss`` or
``discriminator_loss``, or in a handler of ``unpaired_after_step``::

    from unpaired.plugin import report
    report("D_real", logits)            # a tensor is averaged to one value and detached

The trainer collects each iteration's reports and logs their means over the iterations of a log
record (and over ranks, under ``torchrun``) beside the losses: ``<step>/<term>/D_real`` from
inside a loss term, the name as given from a handler. Outside training (a notebook calling a loss)
:func:`report` does nothing, so a plugin never needs to check.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

#: The open collection, if any: (where the means go, the values reported so far by name, the prefix
#: of their names, the device of the means).
_active: ContextVar[tuple | None] = ContextVar("unpaired_reports", default=None)


def report(name: str, value: Tensor | float) -> None:
    """Report ``value`` under ``name`` for this iteration's log.

    Args:
        name: a short name (``D_real``, ``r1``, ``nce_accuracy``); a loss term's reports are
            logged as ``<step>/<term>/<name>``.
        value: a number, or a tensor of any shape (its mean is logged; it is detached, so
            reporting never changes gradients). Reported several times in one iteration (a
            step with ``repeat``), the values are averaged.
    """
    sink = _active.get()
    if sink is None:
        return
    into, reports, prefix, device = sink
    value = value.detach().float().mean() if isinstance(value, Tensor) else torch.tensor(float(value))
    values = reports.setdefault(prefix + name, [])
    values.append(value if device is None else value.to(device))
    into[prefix + name] = values[0] if len(values) == 1 else torch.stack(values).mean()


@contextmanager
def collecting(into: dict[str, Tensor], prefix: str = "", device: torch.device | str | None = None):
    """Collect the reports made inside the ``with`` block into ``into`` (name -> 0-dim tensor, the
    mean of the values reported under that name so far), their names prefixed with ``prefix``.

    Args:
        into: where the means go, as they are reported (e.g. an iteration's loss values).
        device: where the means are put (the losses' device), so that they stack with them.
    """
    token = _active.set((into, {}, prefix, device))
    try:
        yield into
    finally:
        _active.reset(token)
