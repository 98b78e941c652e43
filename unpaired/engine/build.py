"""Building a resolved recipe's networks and loss modules from their specs."""

from __future__ import annotations

import inspect

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from unpaired.errors import Problem, RecipeError
from unpaired.recipe.plan import Term
from unpaired.recipe.resolved import Network, ResolvedRecipe

#: What a consistency loss may ask for by parameter name, besides ``input`` and ``target``.
CONTEXT = ("network", "networks", "images", "batch")


def build_network(recipe: ResolvedRecipe, net: Network, init: bool = True) -> nn.Module:
    """A network of the recipe, built by its plugin and initialised as the recipe says.

    Args:
        init: apply the recipe's init plugin (``init: none`` keeps the plugin's own weights, e.g. a
            pretrained backbone); False for weights about to be loaded.

    Raises:
        RecipeError: the plugin is unknown, rejects its args, or returns something else than an
            ``nn.Module``.
    """
    module = recipe.build(net.spec)
    if not isinstance(module, nn.Module):
        raise RecipeError(f"networks.{net.name}: plugin '{net.spec.type}' returned {type(module).__name__}, not an "
                          "nn.Module.", key=f"networks.{net.name}", code="not-a-module")
    if init:
        recipe.registry.get("init", net.init, f"networks.{net.name}.init").factory(module, gain=net.init_gain)
    if net.spectral_norm:
        spectral_normalise(module)
    return module


def spectral_normalise(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al., "Spectral Normalization for Generative Adversarial
    Networks", ICLR 2018) of every convolution's and linear layer's weight, in place: each is
    divided by its largest singular value, estimated by one power iteration per training-mode
    forward (PyTorch's parametrization). Applied after the init, so the init shapes the direction
    of the weights. A layer that already has it (a plugin's own) is left alone."""
    layers = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
    for layer in list(module.modules()):
        if isinstance(layer, layers) and not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer, "weight")
    return module


def build_loss(recipe: ResolvedRecipe, term: Term, nets: dict[str, nn.Module]) -> nn.Module:
    """The loss module of a term; a constructor parameter ``network`` receives ``nets[term.network]``,
    one named ``networks`` the term's ``networks`` as a dict by name (DCLGAN's dual PatchNCE).

    Raises:
        RecipeError: unknown loss, bad arguments, or a loss that needs a network the term does not name.
    """
    params = inspect.signature(recipe.registry.get(term.spec.kind, term.spec.type, term.where).factory).parameters
    param = params.get("network")
    injected = {"networks": {n: nets[n] for n in term.networks}} if "networks" in params else {}
    if param is not None:
        if term.network is not None:
            injected["network"] = nets[term.network]
        elif param.default is inspect.Parameter.empty:
            raise RecipeError(f"{term.where}.network: the '{term.spec.type}' loss needs a network; name one of "
                              f"{', '.join(nets)}.", key=f"{term.where}.network", code="needs-network")
    return recipe.build(term.spec, **injected)


def context_names(loss: nn.Module) -> list[str]:
    """What of :data:`CONTEXT` a loss's ``forward`` asks for, by parameter name."""
    return [n for n in CONTEXT if n in inspect.signature(loss.forward).parameters]


def loss_context(names, term: Term, nets: dict, images: dict, batch: dict) -> dict:
    """The keyword arguments ``names`` (from :func:`context_names`) of a consistency term's loss."""
    context = {"network": nets.get(term.network), "networks": {n: nets[n] for n in term.networks},
               "images": images, "batch": batch}
    return {k: context[k] for k in names}


def trainable(module: nn.Module) -> bool:
    """Whether a module has parameters that are trained (a loss's projection head, say)."""
    return any(p.requires_grad for p in module.parameters())


def too_few_domain_heads(data, nets) -> list[Problem]:
    """The networks with a head per domain (a ``num_domains`` attribute: StarGAN v2's mapping
    network, style encoder and discriminator) that have fewer heads than the multi-domain ``data``
    has domains (its ``domain_names``): a label past them would index out of range mid-training.

    Args:
        data: the built dataset; only a multi-domain one is checked.
        nets: network name -> built module (any device, meta included).

    Returns:
        One problem per such network (key ``networks.<name>.args.num_domains``, code
        ``too-few-domains``); none for data without domain names.
    """
    names = list(getattr(data, "domain_names", None) or ())
    return [Problem(f"networks.{name}.args.num_domains", "too-few-domains",
                    f"{net.num_domains} domain heads, but the data has {len(names)} domains ({', '.join(names)}): "
                    f"set networks.{name}.args.num_domains={len(names)}, or train on fewer domains.")
            for name, net in nets.items()
            if names and isinstance(getattr(net, "num_domains", None), int) and net.num_domains < len(names)]
