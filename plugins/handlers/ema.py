"""Exponential moving average (EMA) of networks' weights, as a training-event handler with state.

Averaged weights make smoother, often better translations than the raw ones at the same iteration:
StarGAN v2 (Choi et al., CVPR 2020; clovaai/stargan-v2, ``core/solver.py``: ``moving_average``,
beta 0.999) and UVCGAN2 (Torbunov et al., 2023; 0.9999) evaluate and ship the average, and
joliGEN offers it as ``--train_G_ema``. After every iteration each averaged network's floating
tensors move toward the trained network's::

    ema = decay * ema + (1 - decay) * weights          (buffers that are not floats are copied)

The averaging is timm's :class:`timm.utils.ModelEmaV3` (its optional warm-up: ``decay_t = 1 -
(1 + t) ** -2/3`` capped at ``decay``). The averages go into every checkpoint twice: in the handler's
state (so ``--resume`` continues them exactly) and as the weight set ``weights.ema.safetensors``,
which ``translate``, ``evaluate`` and ``export`` use with ``--weights ema``.

Recipe::

    handlers:
      ema: {type: ema, args: {networks: [G_AB, G_BA], decay: 0.999}}
"""

from __future__ import annotations

from timm.utils import ModelEmaV3
from torch import nn

from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.registry import Component


class EMA:
    """An exponential moving average of ``networks``' weights (kind ``handler``, name ``ema``).

    Args:
        networks: the recipe's networks to average (e.g. the generators).
        decay: the weight of the average in each update, in [0, 1); 0.999 is StarGAN v2's.
        start: iterations trained before averaging begins; until then the average is a copy of
            the weights. 0 averages from the initial weights, as StarGAN v2 does.
        warmup: ramp the decay up from 0 (timm's warm-up) rather than use ``decay`` from the start.

    Raises:
        ValueError: ``decay`` outside [0, 1), ``start`` below 0, or no networks.
    """

    def __init__(self, networks: list, decay: float = 0.999, start: int = 0, warmup: bool = False):
        if not networks:
            raise ValueError("networks: name the networks to average, e.g. networks: [G_AB, G_BA]")
        if not 0 <= decay < 1:
            raise ValueError(f"decay: must be in [0, 1), got {decay}")
        if start < 0:
            raise ValueError(f"start: must be 0 or more, got {start}")
        self.names, self.decay, self.start, self.warmup = list(networks), decay, start, warmup
        self.averages: dict[str, ModelEmaV3] = {}
        self.updates = 0

    def _check(self, trainer) -> None:
        unknown = [n for n in self.names if n not in trainer.nets]
        if unknown:
            raise ValueError(f"networks: {', '.join(unknown)} not in the recipe (networks: {', '.join(trainer.nets)})")

    @hookimpl
    def unpaired_train_start(self, trainer):
        if not self.averages:  # a resumed run restored them already
            self._check(trainer)
            self.averages = {n: self._average(trainer.nets[n]) for n in self.names}

    def _average(self, net: nn.Module) -> ModelEmaV3:
        return ModelEmaV3(net, decay=self.decay, update_after_step=self.start, use_warmup=self.warmup)

    @hookimpl(tryfirst=True)  # before anything that saves or evaluates this iteration
    def unpaired_after_step(self, trainer):
        self.updates += 1
        # StarGAN v2 averages from the first iteration with the fixed decay; timm's step counter
        # gives decay 0 (a copy) until ``start`` and the warm-up ramp when asked
        step = None if self.start == 0 and not self.warmup else trainer.iteration
        for name, average in self.averages.items():
            average.update(trainer.nets[name], step=step)

    @hookimpl
    def unpaired_state_dict(self, trainer):
        return {"updates": self.updates, "networks": {n: a.module.state_dict() for n, a in self.averages.items()}}

    @hookimpl
    def unpaired_load_state_dict(self, trainer, state):
        self._check(trainer)
        self.updates = state["updates"]
        self.averages = {n: self._average(trainer.nets[n]) for n in self.names}
        for name, average in self.averages.items():
            average.module.load_state_dict(state["networks"][name])

    @hookimpl
    def unpaired_weight_sets(self, trainer):
        return {n: a.module for n, a in self.averages.items()}


@hookimpl
def unpaired_components():
    return [Component("handler", "ema", EMA)]
