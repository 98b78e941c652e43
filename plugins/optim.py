"""Optimizers and learning-rate schedules.

Schedules follow the reference implementation (Zhu et al., ICCV 2017; ``networks.get_scheduler``)
and are stepped once at the end of each epoch.
"""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from unpaired import Component, hookimpl


def _fused(params: list, fused: bool | None, foreach: bool | None) -> bool | None:
    """The fused (one kernel for all parameters) implementation unless the recipe chose one, where
    every parameter is a floating-point tensor on the CPU or a CUDA GPU. It computes the same update
    as the per-parameter loop to float rounding, in half the time on the CPU (docs/performance.md)."""
    if fused is not None or foreach is not None:
        return fused
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors) or None


def _groups(params) -> list:
    """``params`` as a list, each param group's ``params`` too (a generator is read only once)."""
    return [dict(p, params=list(p["params"])) if isinstance(p, dict) else p for p in params]


def adam(params, lr: float = 0.0002, betas: tuple = (0.5, 0.999), weight_decay: float = 0.0,
         fused: bool | None = None, foreach: bool | None = None):
    """Adam (Kingma & Ba 2015) with the CycleGAN defaults lr 2e-4, betas (0.5, 0.999); fused by
    default (``fused: false`` or ``foreach: true|false`` choose PyTorch's other implementations)."""
    params = _groups(params)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                            fused=_fused(params, fused, foreach), foreach=foreach)


def adamw(params, lr: float = 0.0002, betas: tuple = (0.5, 0.999), weight_decay: float = 0.01,
          fused: bool | None = None, foreach: bool | None = None):
    """AdamW (Loshchilov & Hutter 2019); fused by default, as :func:`adam`."""
    params = _groups(params)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                             fused=_fused(params, fused, foreach), foreach=foreach)


def sgd(params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
    """Stochastic gradient descent, optionally with momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def linear(optimizer, n_epochs: int = 100, n_epochs_decay: int = 100, epoch_count: int = 1):
    """Constant LR for ``n_epochs``, then linear decay over ``n_epochs_decay`` (the CycleGAN schedule).

    Multiplier after e epochs: 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay + 1),
    exactly the reference's ``lambda_rule``; past n_epochs + n_epochs_decay (a run extended
    with a larger ``train.epochs``) it stays at 0 instead of turning negative.

    Raises:
        ValueError: a negative number of epochs.
    """
    if n_epochs < 0 or n_epochs_decay < 0:
        raise ValueError(f"n_epochs and n_epochs_decay are numbers of epochs, 0 or more; got {n_epochs} and "
                         f"{n_epochs_decay}")

    def rule(epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1))

    return lr_scheduler.LambdaLR(optimizer, rule)


def step(optimizer, step_size: int = 50, gamma: float = 0.1):
    """Multiply the LR by ``gamma`` every ``step_size`` epochs (reference: lr_decay_iters=50)."""
    return lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


def plateau(optimizer, factor: float = 0.2, threshold: float = 0.01, patience: int = 5):
    """Reduce the LR by ``factor`` when the step's mean epoch loss stops falling (reference values)."""
    return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor, threshold=threshold, patience=patience)


def cosine(optimizer, t_max: int = 200, eta_min: float = 0.0):
    """Cosine annealing to ``eta_min`` over ``t_max`` epochs (reference: T_max=n_epochs, eta_min=0)."""
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=eta_min)


def cosine_restarts(optimizer, t_0: int = 100, t_mult: int = 1, eta_min: float = 0.0):
    """Cosine annealing to ``eta_min`` over ``t_0`` epochs, then again from the start, each cycle
    ``t_mult`` times the last (Loshchilov & Hutter, "SGDR", ICLR 2017; PyTorch's
    ``CosineAnnealingWarmRestarts``): UVCGAN2's pretraining schedule (LS4GAN/uvcgan2,
    ``scripts/afhq/pretrain_afhq.py``: T_0 100, T_mult 1, eta_min 5e-8 · batch / 512).

    Raises:
        ValueError: ``t_0`` or ``t_mult`` below 1, or ``eta_min`` negative.
    """
    if t_0 < 1 or t_mult < 1 or eta_min < 0:
        raise ValueError(f"t_0 and t_mult must be 1 or more and eta_min 0 or more; got {t_0}, {t_mult}, {eta_min}")
    return lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=t_0, T_mult=t_mult, eta_min=eta_min)


def constant(optimizer):
    """Keep the LR unchanged."""
    return lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


@hookimpl
def unpaired_components():
    return [
        *(Component("optimizer", f.__name__, f) for f in (adam, adamw, sgd)),
        *(Component("scheduler", f.__name__, f) for f in (linear, step, plateau, cosine, cosine_restarts, constant)),
    ]
