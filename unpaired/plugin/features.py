"""Intermediate features of a network, by layer: what a feature-space loss reads from a generator.

:func:`extract_features` returns the outputs of chosen layers of a network applied to images and
stops the forward pass as soon as the last of them has run, so that only the encoder part of a
generator runs — as ``netG(x, layers, encode_only=True)`` in the CUT code (Park et al., "Contrastive
Learning for Unpaired Image-to-Image Translation", ECCV 2020; taesungp/contrastive-unpaired-
translation). :func:`feature_channels` gives those layers' channel counts without touching the
network's weights, by running a copy of it on the meta device.

A layer is named either by an int ``i``, the i-th module of the network's ``nn.Sequential``
attribute ``model`` (the layer list of CycleGAN's and CUT's ResnetGenerator, so CUT's
``0, 4, 8, 12, 16`` mean the same here), or by a submodule path as in ``network.named_modules()``
(``"model.4"``, ``"encoder.layer1"``).
"""

from __future__ import annotations

import copy
import itertools
from typing import Sequence

import torch
from torch import Tensor, nn

from unpaired.plugin.registry import closest

__all__ = ["extract_features", "feature_channels", "resolve_layers"]


class _StopForward(Exception):
    """Raised by the hook of the last requested layer to end the forward pass early."""


def _layer_list(network: nn.Module) -> nn.Sequential:
    model = getattr(network, "model", None)
    if not isinstance(model, nn.Sequential):
        names = [n for n, _ in network.named_modules() if n][:8]
        hint = f" (e.g. {', '.join(repr(n) for n in names)})" if names else ""
        what = "it has none" if model is None else f"its 'model' is a {type(model).__name__}"
        raise ValueError(
            f"{type(network).__name__}: integer layers index the network's nn.Sequential "
            f"attribute 'model', and {what}; name the layers by submodule path instead{hint}."
        )
    return model


def resolve_layers(network: nn.Module, layers: Sequence[int | str]) -> list[nn.Module]:
    """The modules that ``layers`` name in ``network``, in the order of ``layers``.

    Args:
        network: any module.
        layers: ints (index into ``network.model``, an ``nn.Sequential``; negative ints count
            from the end as in Python) or submodule paths of ``network.named_modules()``.

    Returns:
        One module per entry of ``layers`` (repeated entries give the same module).

    Raises:
        ValueError: ``layers`` is empty or a str/int sequence of the wrong type; an int out of
            range (``"ResnetGenerator: layer 40: model has 27 layers (0..26)"``); an int when the
            network has no ``nn.Sequential`` ``model``; an unknown submodule path (with the
            closest known name).
    """
    if isinstance(layers, (str, int)) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise ValueError(
            f"{type(network).__name__}: layers must be a non-empty list of ints or submodule "
            f"names, got {layers!r}."
        )
    cls = type(network).__name__
    named = None
    modules = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, str)):
            raise ValueError(f"{cls}: layer {layer!r} is neither an int nor a submodule name.")
        if isinstance(layer, int):
            model = _layer_list(network)
            n = len(model)
            if not -n <= layer < n:
                raise ValueError(
                    f"{cls}: layer {layer}: model has {n} layers (0..{n - 1}"
                    + (f", or -{n}..-1 from the end)." if n else ").")
                )
            modules.append(model[layer])
        else:
            if named is None:
                named = dict(network.named_modules())
            if layer not in named:
                known = [k for k in named if k]
                shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
                raise ValueError(
                    f"{cls}: layer '{layer}' is not a submodule name.{closest(layer, known)} "
                    f"Known names: {shown or 'none'}."
                )
            modules.append(named[layer])
    return modules


def extract_features(network: nn.Module, x: Tensor, layers: Sequence[int | str], *inputs) -> list[Tensor]:
    """The outputs of ``layers`` of ``network`` applied to ``x``, in the order of ``layers``.

    Forward hooks record each requested module's output; once every requested module has run,
    the hook raises a private exception that ends the forward pass, so the layers after the last
    requested one (a generator's decoder) never run — as CUT's ``encode_only=True``. The hooks
    are removed whatever happens. Gradients flow as in an ordinary forward pass (no ``no_grad``);
    a network in training mode updates its BatchNorm statistics of the layers that ran.

    A recorded output that is not the last one to be produced is cloned, so that a later in-place
    layer (``nn.ReLU(inplace=True)`` after a norm layer) cannot change it afterwards. A module
    that runs more than once contributes its first output.

    Args:
        network: a module called as ``network(x)``.
        x: its input, e.g. images (N, C, H, W) in [-1, 1]; any device, the meta device included.
        layers: ints (the i-th module of ``network.model``, an ``nn.Sequential``; CUT's numbering)
            or submodule paths as in ``network.named_modules()``, e.g. ``"model.4"``.
        inputs: further arguments of the forward pass, ``network(x, *inputs)`` (UNSB's time step
            and noise code).

    Returns:
        One tensor per entry of ``layers``, e.g. (N, C_l, H_l, W_l) for a convolutional network.

    Raises:
        ValueError: a bad layer (see :func:`resolve_layers`), or a requested module that did not
            run during ``network(x)`` (it is not on the forward path).
    """
    modules = resolve_layers(network, layers)
    wanted = {id(m): m for m in modules}  # distinct modules, in first-mention order
    outputs: dict[int, Tensor] = {}

    def hook(module: nn.Module, args, output) -> None:
        key = id(module)
        if key in outputs:
            return
        if len(outputs) + 1 == len(wanted):
            outputs[key] = output
            raise _StopForward
        outputs[key] = output.clone() if isinstance(output, Tensor) else output

    handles = [m.register_forward_hook(hook) for m in wanted.values()]
    try:
        network(x, *inputs)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [layer for layer, m in zip(layers, modules) if id(m) not in outputs]
    if missing:
        raise ValueError(
            f"{type(network).__name__}: layers {missing} did not run during the forward pass; "
            "choose modules on the network's forward path."
        )
    return [outputs[id(m)] for m in modules]


def _first_conv_in_channels(network: nn.Module) -> int | None:
    for m in network.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def _meta_copy(network: nn.Module) -> nn.Module:
    """A deep copy of ``network`` whose parameters and buffers are on the meta device.

    The copy never reads or duplicates the weights: each parameter and buffer is pre-seeded in
    ``deepcopy``'s memo with a meta tensor of the same shape, dtype and ``requires_grad``.
    """
    tensors = list(itertools.chain(network.parameters(), network.buffers()))
    if all(t.is_meta for t in tensors):
        return network
    memo: dict[int, object] = {}
    for t in tensors:
        meta = t.detach().to("meta")
        if isinstance(t, nn.Parameter):
            meta = nn.Parameter(meta, requires_grad=t.requires_grad)
        memo[id(t)] = meta
    return copy.deepcopy(network, memo).to("meta")


def feature_channels(
    network: nn.Module,
    layers: Sequence[int | str],
    in_channels: int | None = None,
    size: int = 64,
) -> list[int]:
    """The channel count (dim 1) of each output of ``layers``, without touching the weights.

    Runs :func:`extract_features` on a meta-device copy of ``network`` (the network itself when it
    is already on the meta device) with a meta input of shape (1, in_channels, S, S), so no
    memory is read or allocated for weights or activations, and the network's own device,
    weights and training mode are left unchanged. The copy runs in eval mode.

    Args:
        network: the module, on any device.
        layers: as for :func:`extract_features`.
        in_channels: channels of the probe input; default ``network.in_channels`` if it has that
            attribute, else the ``in_channels`` of its first ``nn.Conv2d``.
        size: side S of the probe input; raised to at least ``2 * network.size_divisor`` (1 when
            absent) and rounded up to a multiple of ``size_divisor``.

    Returns:
        One int per entry of ``layers``, e.g. ``[3, 128, 256, 256, 256]`` for CUT's layers
        ``0, 4, 8, 12, 16`` of a ResnetGenerator with ngf=64, 9 blocks and 3 input channels.

    Raises:
        ValueError: a bad layer (see :func:`resolve_layers`); ``in_channels`` not given and not
            found on the network.
    """
    resolve_layers(network, layers)  # check before copying
    if in_channels is None:
        in_channels = getattr(network, "in_channels", None)
        if not isinstance(in_channels, int):
            in_channels = _first_conv_in_channels(network)
        if in_channels is None:
            raise ValueError(
                f"{type(network).__name__}: cannot tell its input channels (no 'in_channels' "
                "attribute, no Conv2d); pass in_channels."
            )
    divisor = int(getattr(network, "size_divisor", 1) or 1)
    side = max(int(size), 2 * divisor)
    side = -(-side // divisor) * divisor
    meta_net = _meta_copy(network)
    modes = [(m, m.training) for m in meta_net.modules()]  # restored when meta_net is network
    meta_net.eval()
    try:
        with torch.no_grad():
            x = torch.empty(1, in_channels, side, side, device="meta")
            feats = extract_features(meta_net, x, layers)
    finally:
        for m, mode in modes:
            m.training = mode
    return [int(f.shape[1]) for f in feats]
