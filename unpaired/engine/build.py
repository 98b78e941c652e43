"""Building a recipe's networks and loss modules from their specs."""

from __future__ import annotations

import inspect

from omegaconf import DictConfig
from torch import nn

from unpaired.errors import RecipeError
from unpaired.plugin.registry import Registry
from unpaired.recipe.load import plugin_args
from unpaired.recipe.validate import network_kind


def build_network(recipe: DictConfig, name: str, registry: Registry, init: bool = True) -> nn.Module:
    """Network ``name`` of a recipe, built by its plugin and initialised as the recipe says."""
    spec = recipe.networks[name]
    net = registry.create(network_kind(recipe, name), spec.type, where=f"networks.{name}", **plugin_args(spec.args))
    if not isinstance(net, nn.Module):
        raise RecipeError(f"networks.{name}: plugin '{spec.type}' returned {type(net).__name__}, not an nn.Module.")
    if init:  # "none" keeps the plugin's own weights (e.g. a pretrained backbone)
        registry.get("init", spec.init, f"networks.{name}.init").factory(net, gain=spec.init_gain)
    return net


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
