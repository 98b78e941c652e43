"""Weight initialisations, as ``init_weights`` in the authors' pytorch-CycleGAN-and-pix2pix code
(Zhu et al., ICCV 2017; Isola et al., CVPR 2017).

Each component is a function ``(module, gain=0.02) -> None`` that initialises ``module`` in place:
every submodule whose class name contains ``Conv`` or ``Linear`` gets its weight drawn by the
chosen scheme and its bias set to 0; every ``BatchNorm2d`` gets weight ~ N(1, gain) and bias 0.
Other layers (InstanceNorm without affine parameters, for one) are left alone. A pretrained
backbone is re-initialised too, unless the network sets ``init: none``. A weight under spectral
normalisation (Miyato et al., ICLR 2018; both ``torch.nn.utils.spectral_norm`` and
``torch.nn.utils.parametrizations.spectral_norm``) is initialised where it is trained: the
unnormalised weight the layer computes its weight from.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn
from torch.nn.utils import parametrize

from unpaired import Component, hookimpl


def _trained_weight(m: nn.Module) -> Tensor | None:
    """The tensor a layer trains for its weight: the weight itself, or under spectral norm (and any
    other parametrization) the original it is computed from (else initialising ``weight`` would
    change a value the next forward pass recomputes)."""
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return getattr(m, "weight_orig", None) if hasattr(m, "weight_orig") else getattr(m, "weight", None)


def _apply(module: nn.Module, init_weight: Callable[[Tensor], object], gain: float) -> None:
    def init_one(m: nn.Module) -> None:
        name = m.__class__.__name__
        weight, bias = _trained_weight(m), getattr(m, "bias", None)
        if weight is not None and ("Conv" in name or "Linear" in name):
            init_weight(weight.data)
        elif "BatchNorm2d" in name and weight is not None:
            nn.init.normal_(weight.data, 1.0, gain)
        else:
            return
        if bias is not None:
            nn.init.constant_(bias.data, 0.0)

    module.apply(init_one)


def normal(module: nn.Module, gain: float = 0.02) -> None:
    """Conv/Linear weights ~ N(0, gain), biases 0; BatchNorm2d weights ~ N(1, gain), bias 0.

    The CycleGAN and pix2pix default. Modifies ``module`` in place.
    """
    _apply(module, lambda w: nn.init.normal_(w, 0.0, gain), gain)


def xavier(module: nn.Module, gain: float = 0.02) -> None:
    """Conv/Linear weights by ``xavier_normal_(gain=gain)`` (Glorot & Bengio 2010), biases 0.

    BatchNorm2d as in :func:`normal`. Modifies ``module`` in place.
    """
    _apply(module, lambda w: nn.init.xavier_normal_(w, gain=gain), gain)


def kaiming(module: nn.Module, gain: float = 0.02) -> None:
    """Conv/Linear weights by ``kaiming_normal_(a=0, mode="fan_in")`` (He et al. 2015), biases 0.

    ``gain`` applies only to BatchNorm2d, as in :func:`normal`. Modifies ``module`` in place.
    """
    _apply(module, lambda w: nn.init.kaiming_normal_(w, a=0, mode="fan_in"), gain)


def orthogonal(module: nn.Module, gain: float = 0.02) -> None:
    """Conv/Linear weights by ``orthogonal_(gain=gain)`` (Saxe et al. 2014), biases 0.

    BatchNorm2d as in :func:`normal`. Modifies ``module`` in place.
    """
    _apply(module, lambda w: nn.init.orthogonal_(w, gain=gain), gain)


def none(module: nn.Module, gain: float = 0.02) -> None:
    """Leave the weights as the network's plugin made them (e.g. a pretrained timm backbone)."""


@hookimpl
def unpaired_components():
    return [Component("init", f.__name__, f) for f in (normal, xavier, kaiming, orthogonal, none)]
