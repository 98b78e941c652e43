"""Validating a recipe: every problem at once, each a :class:`~unpaired.errors.Problem` naming its
recipe key and a short code, before anything is built.

Also the recipe's structural facts that more than one layer needs, decided here once: which
networks are discriminators (:func:`network_kind`), which side an adversarial term is on
(:func:`term_side`), which terms take part (:func:`active_terms`).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from unpaired.domains import DATA_IMAGES, DOMAIN_OF, SECOND_SAMPLES, domain_channels
from unpaired.errors import Problem, RecipeError
from unpaired.plugin.registry import Registry, check_args, closest, default_registry
from unpaired.recipe.graph import RANDOM, ImageGraph
from unpaired.recipe.load import plugin_args
from unpaired.recipe.scalar import parse_scalar, scalar_problems
from unpaired.runtime.device import pick_device


class Problems(list):
    """The problems found so far, in order (a list of :class:`~unpaired.errors.Problem`)."""

    def add(self, key: str, code: str, text: str) -> None:
        """A problem of recipe key ``key`` (``text`` starts with the key, or gets it)."""
        self.append(Problem(key, code, text))

    def add_error(self, err: RecipeError, key: str = "", code: str = "invalid") -> None:
        """An error raised by a check (the registry's), as its problems, or as a problem with its
        own key and code."""
        if getattr(err, "problems", None):
            self.extend(err.problems)
        else:
            self.append(Problem.of(err, key, code))


# -- the structure, decided once ---------------------------------------------------------------------
def active_terms(step: DictConfig) -> dict[str, DictConfig]:
    """Loss terms that take part: those whose weight is ever non-zero (a malformed weight counts,
    so that its problem is reported)."""
    return {n: t for n, t in step.losses.items() if scalar_problems(t.weight, "") or parse_scalar(t.weight).active}


def term_images(term) -> list[str]:
    """The values a loss term reads (images, and the labels it gives its discriminator; for a
    resolved term also those its plugin's arguments name, :func:`declared_images`)."""
    return [v for v in (term.real, term.fake, term.input, term.target, term.real_label, term.fake_label,
                        *getattr(term, "reads", ())) if v is not None]


def declared_images(factory, args) -> tuple[str, ...]:
    """The values a loss reads from the step's images by name: the arguments its plugin lists in
    ``image_args`` (a str or a list of str each; the plugin's default when the recipe sets none).
    They are made for the step like the term's input and target (DCLGAN's reverse pair, UNSB's
    second pair and time step, FastCUT's flip coin)."""
    params = inspect.signature(factory).parameters
    found: list[str] = []
    for name in getattr(factory, "image_args", ()):
        value = args.get(name, params[name].default if name in params else None)
        if value is inspect.Parameter.empty or value is None:
            continue
        found += [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return tuple(dict.fromkeys(found))


def data_values(recipe: DictConfig, registry: Registry) -> tuple[str, ...]:
    """The names of the values the recipe's dataset gives each iteration: its plugin's ``provides``
    (e.g. a multi-domain dataset's images, labels and references), else ``real_A`` and ``real_B``,
    and ``real_A2`` and ``real_B2`` with ``data.second_sample``."""
    try:
        factory = registry.get("dataset", recipe.data.dataset).factory
    except RecipeError:
        return DATA_IMAGES
    provides = tuple(getattr(factory, "provides", DATA_IMAGES))
    return provides + SECOND_SAMPLES if recipe.data.second_sample and provides == DATA_IMAGES else provides


def network_kind(recipe: DictConfig, name: str) -> str:
    """A network's component kind: its ``role`` when set, else ``"discriminator"`` if an adversarial
    term judges with it, else ``"generator"``. The one place that decides it."""
    role = recipe.networks[name].get("role")
    if role:
        return role
    judges = {t.discriminator for step in recipe.steps.values() for t in step.losses.values()
              if t is not None and t.discriminator}
    return "discriminator" if name in judges else "generator"


def term_side(term, step) -> str:
    """Which side an adversarial term is on: its ``side`` when set, else ``"discriminator"`` when the
    step trains the term's discriminator, else ``"generator"``."""
    return term.side or ("discriminator" if term.discriminator in step.networks else "generator")


def default_arg(registry: Registry, kind: str, name: str, arg: str):
    """The default of argument ``arg`` of component ``name``, or None (unknown or no default)."""
    try:
        comp = registry.get(kind, name)
    except RecipeError:
        return None
    param = inspect.signature(comp.factory).parameters.get(arg)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


# -- the check ---------------------------------------------------------------------------------------
def validate(recipe: DictConfig, registry: Registry | None = None) -> list[Problem]:
    """Every problem in a recipe, checked before any network is built.

    Checks that each plugin name exists (with the closest known name), each component argument is
    accepted, each network, image and step a recipe names is defined, each image has one way of
    being made and no loops, each loss term is complete, and channel counts agree: a network's
    input image has its ``in_channels``, and a consistency term (e.g. the identity loss) compares
    images with equal channel counts.

    Returns:
        The problems (each a ``str`` starting with its recipe key, with fields ``key`` and
        ``code``); empty when the recipe is good.
    """
    reg = registry or default_registry()
    problems = Problems()
    missing = sorted(OmegaConf.missing_keys(recipe))
    for key in missing:
        parts = key.split(".")
        hint = ""
        if parts[0] == "networks" and len(parts) == 3 and parts[2] == "type":  # an override that misspelt a network
            others = [n for n in recipe.networks if n != parts[1] and not OmegaConf.is_missing(recipe.networks[n], "type")]
            lower = {n.lower(): n for n in others}  # G_Ab is G_AB misspelt, whatever difflib thinks of G_BA
            guess = lower.get(parts[1].lower())
            hint = f" Did you mean '{guess}'?" if guess else closest(parts[1], others)
            hint = f" ('{parts[1]}' is a new network here: the recipe's are {', '.join(others)}.{hint})" if hint else ""
        problems.add(key, "missing", f"required value is missing (???); set it in the recipe or as {key}=VALUE.{hint}")
    if any(".args." not in key for key in missing):  # the recipe's structure is incomplete
        return problems
    _check_numbers(recipe, problems)
    try:
        reg = reg.for_recipe(recipe)
    except RecipeError as err:
        problems.add_error(err, "plugins")
    nets, images = recipe.networks, recipe.images

    def check_component(kind, name, args, where, args_where=None, injected=()):
        try:
            comp = reg.get(kind, name, where)
            if args is not None:
                given = plugin_args(args)
                for key in injected:
                    if key in given:
                        at = f"{args_where or where + '.args'}.{key}"
                        problems.add(at, "injected", "set by the trainer; remove it from args.")
                check_args(comp.factory, {k: v for k, v in given.items() if k not in injected}, args_where or f"{where}.args")
        except RecipeError as err:
            problems.add_error(err, where)

    check_component("dataset", recipe.data.dataset, recipe.data.args, "data.dataset", "data.args")
    kinds = {}
    for name, spec in nets.items():
        if spec.role not in (None, "generator", "discriminator"):
            problems.add(f"networks.{name}.role", "bad-value", f"'{spec.role}' is not generator or discriminator.")
            continue
        kinds[name] = network_kind(recipe, name)
        before = len(problems)
        check_component(kinds[name], spec.type, spec.args, f"networks.{name}")
        if spec.role and len(problems) > before and problems[-1].code == "unknown-plugin":
            last = problems.pop()
            problems.add(last.key, last.code, f"{last} (networks.{name}.role is {spec.role})")
        check_component("init", spec.init, None, f"networks.{name}.init")
        if spec.augment is not None:
            if kinds[name] != "discriminator":
                problems.add(f"networks.{name}.augment", "not-a-discriminator",
                             f"'{name}' is a {kinds[name]}: augment is for discriminators (every image they score "
                             "goes through it).")
            else:
                check_component("augmentation", spec.augment.type, spec.augment.args, f"networks.{name}.augment")
    if not nets:
        problems.add("networks", "empty", "the recipe defines no networks.")

    graph = ImageGraph({n: spec for n, spec in images.items() if not _image_problems(n, spec, problems)},
                       data_values(recipe, reg))

    def net_arg(net: str, arg: str):
        spec = nets[net]
        return spec.args.get(arg, default_arg(reg, kinds.get(net, "generator"), spec.type, arg))

    def channels(image: str):
        if image in graph.data:
            value = recipe.data.args.get("channels", default_arg(reg, "dataset", recipe.data.dataset, "channels"))
            if image not in DOMAIN_OF:  # a multi-domain dataset's images: one channel count
                return value if isinstance(value, int) and image in getattr(
                    reg.get("dataset", recipe.data.dataset).factory, "image_values", ()) else None
            try:
                return None if value is None else domain_channels(value, DOMAIN_OF[image])
            except ValueError as err:
                problems.add("data.args.channels", "bad-value", str(err))
                return None
        node = graph.nodes.get(image)
        if node is None or node.random is not None or node.output is not None:
            return None
        if node.hflip or node.op:  # an op keeps its first input's shape (UNSB's roll-out)
            return channels(node.inputs[0])
        if node.net is None:  # a concatenation
            parts = [channels(src) for src in node.inputs]
            return None if None in parts else sum(parts)
        return net_arg(node.net, "out_channels") if node.net in nets else None

    def known_image(name, where):
        if name in graph:
            return True
        known = graph.known()
        problems.add(where, "unknown-image", f"image '{name}' is not defined.{closest(name, known)} Defined: "
                                             f"{', '.join(known)}.")
        return False

    loops = graph.loops()
    for loop in loops:
        problems.add(loop.split(":")[0], "loop", loop)
    for name, node in graph.nodes.items():
        where = f"images.{name}"
        if name in graph.data:
            problems.add(where, "data-image", f"'{name}' is provided by the data; choose another name.")
        if node.net is not None and node.net not in nets:
            problems.add(f"{where}.net", "unknown-network", f"network '{node.net}' is not defined.{closest(node.net, nets)}")
            continue
        if node.op:
            check_component("graph_op", node.op, images[name].args, f"{where}.op", f"{where}.args")
            for net in node.networks:
                if net not in nets:
                    problems.add(f"{where}.networks", "unknown-network", f"network '{net}' is not defined.{closest(net, nets)}")
        what = ["like"] if node.random else ["input"] * len(node.inputs) if node.net or node.op else ["hflip", "where"] \
            if node.hflip else ["concat"] * len(node.inputs)
        if not all(known_image(src, f"{where}.{w}") for src, w in zip(node.inputs, what)):
            continue
        if node.net is not None and len(node.inputs) == 1 and not loops:
            want, have = net_arg(node.net, "in_channels"), channels(node.inputs[0])
            if want is not None and have is not None and want != have:
                problems.add(where, "channels",
                             f"network '{node.net}' takes {want} input channels but '{node.inputs[0]}' has "
                             f"{have}. Set networks.{node.net}.args.in_channels, or drop this image and the "
                             "terms that use it (an identity loss needs equal input and output channels).")

    if not recipe.steps:
        problems.add("steps", "empty", "the recipe defines no optimisation steps.")
    for sname, step in recipe.steps.items():
        where = f"steps.{sname}"
        if not step.networks:
            problems.add(f"{where}.networks", "empty", "name the networks this step optimises.")
        for net in step.networks:
            if net not in nets:
                problems.add(f"{where}.networks", "unknown-network", f"network '{net}' is not defined.{closest(net, nets)}")
        _check_optimizer(sname, step, recipe.steps, problems)
        if step.optimizer.share is None:
            check_component("optimizer", step.optimizer.type, step.optimizer.args, f"{where}.optimizer",
                            injected=("params",))
            for group, args in step.optimizer.groups.items():  # a group's args are the optimizer's keyword args
                check_component("optimizer", step.optimizer.type, args, f"{where}.optimizer",
                                f"{where}.optimizer.groups.{group}", injected=("params",))
        for at, args in [(f"{where}.optimizer.args", step.optimizer.args),
                         *((f"{where}.optimizer.groups.{g}", a) for g, a in step.optimizer.groups.items())]:
            lr = args.get("lr") if args is not None else None
            if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr <= 0:
                problems.add(f"{at}.lr", "not-positive", f"must be above 0, got {lr} (a network that should not learn "
                                                         f"is left out of {where}.networks).")
        for tname, term in step.losses.items():
            at = f"{where}.losses.{tname}.weight"
            if bad := scalar_problems(term.weight, at):
                for key, code, text in bad:
                    problems.add(key, code, text)
            elif parse_scalar(term.weight).lowest < 0:
                problems.add(at, "negative", f"must be 0 or more (0 switches the term off), got {term.weight}; a "
                                             "negative weight maximises the loss.")
        if not active_terms(step):
            problems.add(f"{where}.losses", "no-term", f"no active loss term (all are of weight 0); delete the step "
                                                       f"with {where}=null.")
        for tname, term in active_terms(step).items():
            _check_term(term, f"{where}.losses.{tname}", step, nets, check_component, problems)
            for img in term_images(term):
                known_image(img, f"{where}.losses.{tname}")
            if term.consistency:
                try:
                    reads = declared_images(reg.get("consistency_loss", term.consistency).factory, plugin_args(term.args))
                except RecipeError:
                    reads = ()  # an unknown plugin is reported by _check_term
                for img in reads:
                    known_image(img, f"{where}.losses.{tname}.args")
            if term.consistency and term.input and term.target and not term.network and not loops:
                ci, ct = channels(term.input), channels(term.target)
                if ci is not None and ct is not None and ci != ct:
                    problems.add(f"{where}.losses.{tname}", "channels",
                                 f"'{term.input}' has {ci} channels but '{term.target}' has {ct}; a consistency loss "
                                 "(such as the identity loss) needs equal channel counts. Remove the term "
                                 f"({where}.losses.{tname}=null) or match the channels.")
    sch = recipe.train.scheduler
    check_component("scheduler", sch.type, sch.args, "train.scheduler", injected=("optimizer",))
    if sch.interval not in ("epoch", "iteration"):
        problems.add("train.scheduler.interval", "bad-value", f"'{sch.interval}' is not epoch or iteration.")
    elif sch.interval == "iteration" and sch.type == "plateau":
        problems.add("train.scheduler.interval", "bad-value", "plateau follows the epoch's mean loss; use interval: epoch.")
    if recipe.train.precision not in ("fp32", "bf16", "fp16", "auto"):
        problems.add("train.precision", "bad-value", f"'{recipe.train.precision}' is not one of fp32, bf16, fp16, auto.")
    for img in recipe.samples:
        if known_image(img, "samples") and not loops and channels(img) not in (None, 1, 3):
            problems.add("samples", "channels", f"image '{img}' has {channels(img)} channels; a sample grid shows 1- or "
                                                "3-channel images.")
    for direction, target in recipe.inference.items():
        where = f"inference.{direction}"
        _check_inference(where, target, nets, graph, kinds, problems)
        if isinstance(target, str) and target in graph.nodes and not loops and channels(target) not in (None, 1, 3):
            problems.add(where, "channels", f"image '{target}' has {channels(target)} channels; translations are "
                                            "written as 1- or 3-channel images.")
    for name, spec in recipe.handlers.items():
        check_component("handler", spec.type, spec.args, f"handlers.{name}")
    if recipe.ema is not None:
        _check_ema(recipe.ema, nets, kinds, problems)
        if "ema" in recipe.handlers:
            problems.add("handlers.ema", "duplicate", "the recipe's ema section is this handler already; keep one "
                                                      "(handlers.ema=null, or ema=null).")
    _check_eval(recipe.eval, check_component, problems)
    return list(dict.fromkeys(problems))  # one message per problem, however often it was met


def raise_problems(problems: list[Problem]) -> None:
    """Raise one :class:`RecipeError` listing ``problems`` (nothing when there are none)."""
    if problems:
        raise RecipeError.listing(problems)


def _check_eval(ev: DictConfig, check_component, problems: Problems) -> None:
    """The eval section's plugins and their args, and its domain keys."""
    for name, spec in ev.metrics.items():
        check_component("metric", spec.type or name, spec.args, f"eval.metrics.{name}" + (".type" if spec.type else ""),
                        f"eval.metrics.{name}.args")
    for kind, key in (("feature_extractor", "features"), ("classifier", "classifier")):
        if ev[key] is not None:
            check_component(kind, ev[key].type, ev[key].args, f"eval.{key}.type", f"eval.{key}.args")
    for domain in ev.classes:
        if domain not in ("A", "B"):
            problems.add(f"eval.classes.{domain}", "bad-value", "domains are A and B.")
    if ev.classes and ev.classifier is None:
        problems.add("eval.classes", "needs-classifier", "set eval.classifier too (the classifier whose classes these are).")


def _check_ema(ema: DictConfig, nets, kinds: dict, problems: Problems) -> None:
    """The ``ema`` section: known generators, a decay in [0, 1), a start of 0 or more."""
    if not ema.networks:
        problems.add("ema.networks", "empty", "name the networks to average, e.g. ema.networks=[G_AB, G_BA].")
    for n in ema.networks:
        if n not in nets:
            problems.add("ema.networks", "unknown-network", f"network '{n}' is not defined.{closest(n, nets)}")
        elif kinds.get(n) == "discriminator":
            problems.add("ema.networks", "discriminator", f"'{n}' is a discriminator; an average serves the networks "
                                                          "that translate.")
    if not 0 <= ema.decay < 1:
        problems.add("ema.decay", "bad-value", f"must be in [0, 1) (0.999 is StarGAN v2's), got {ema.decay}.")
    if ema.start < 0:
        problems.add("ema.start", "negative", f"must be 0 or more, got {ema.start}.")


def _random_problems(where: str, spec, problems: Problems) -> bool:
    """Whether a random node's entry is malformed (the problems are added)."""
    before = len(problems)
    if spec.random not in RANDOM:
        problems.add(f"{where}.random", "bad-value", f"'{spec.random}' is not one of {', '.join(RANDOM)}.")
    if any(v is not None for v in (spec.net, spec.input, spec.concat, spec.output, spec.hflip, spec.where, spec.op)) \
            or spec.networks or spec.args:
        problems.add(where, "bad-image", "a random value is drawn, not made: remove net, input, output, concat, hflip, "
                                         "where, op, networks and args.")
    if spec.random == "normal" and (spec.low is not None or spec.high is not None):
        problems.add(f"{where}.low" if spec.low is not None else f"{where}.high", "ignored-args",
                     "a normal draw is N(0, I): low and high are for uniform and integer draws; remove them.")
    if any(not isinstance(d, int) or d < 1 for d in spec.shape):
        problems.add(f"{where}.shape", "bad-value", f"each sample's shape: positive sizes, e.g. [16]; got {list(spec.shape)}.")
    if spec.random == "integer" and spec.high is None:
        problems.add(f"{where}.high", "missing", "integer labels are drawn from [low, high): set high (e.g. the "
                                                 "number of domains).")
    low, high = spec.low if spec.low is not None else 0, spec.high if spec.high is not None else 1
    if spec.random in ("uniform", "integer") and not low < high:
        problems.add(f"{where}.high", "bad-value", f"must be above low ({low}), got {high}.")
    if spec.random == "integer" and any(v is not None and v != int(v) for v in (spec.low, spec.high)):
        problems.add(f"{where}.low", "bad-value", "integer labels need whole low and high.")
    return len(problems) > before


def _image_problems(name: str, spec, problems: Problems) -> bool:
    """Whether an image entry is malformed (the problem is added)."""
    where = f"images.{name}"
    if spec.random is not None:
        return _random_problems(where, spec, problems)
    if spec.op is not None:
        if any(v is not None for v in (spec.net, spec.concat, spec.output, spec.hflip, spec.where, spec.low, spec.high,
                                       spec.like)) or spec.shape:
            problems.add(where, "bad-image", "an op image is 'op: <plugin>' with 'input', 'networks' and 'args', and "
                                             "nothing else (no net, concat, output, hflip or random keys).")
            return True
        if not (isinstance(spec.input, str) or (OmegaConf.is_list(spec.input) and len(spec.input) > 0
                                                 and all(isinstance(i, str) for i in spec.input))):
            problems.add(f"{where}.input", "bad-image", f"an image name or a list of image names, got {spec.input!r}.")
            return True
        return False
    if spec.networks or spec.args:
        problems.add(where, "bad-image", "networks and args belong to an op image ('op: <plugin>'); set op, or remove them.")
        return True
    if spec.hflip is not None or spec.where is not None:
        if spec.hflip is None or spec.shape or any(v is not None for v in (spec.net, spec.input, spec.concat, spec.output,
                                                                           spec.low, spec.high, spec.like)):
            problems.add(where, "bad-image", "a mirrored image is 'hflip: <image>' with an optional 'where: <0/1 value>' "
                                             "and nothing else (no net, input, concat, output or random keys).")
            return True
        return False
    if any(v is not None for v in (spec.low, spec.high, spec.like)) or spec.shape or spec.shared:
        problems.add(where, "bad-image", "shape, low, high, like and shared describe a random value; set random too, or "
                                         "remove them.")
        return True
    if spec.concat is not None:
        if spec.net is not None or spec.input is not None:
            problems.add(where, "bad-image", "give either 'concat' (a list of images) or 'net' with 'input', not both.")
        elif len(spec.concat) < 2:
            problems.add(f"{where}.concat", "bad-image", "name at least two images to concatenate along channels.")
        else:
            return False
    elif spec.net is None or spec.input is None:
        problems.add(where, "bad-image", "set 'net' and 'input' (the image is net(input)), or 'concat: [image, image, ...]'.")
    elif not (isinstance(spec.input, str) or (OmegaConf.is_list(spec.input) and len(spec.input) > 0
                                                and all(isinstance(i, str) for i in spec.input))):
        problems.add(f"{where}.input", "bad-image", f"an image name or a list of image names, got {spec.input!r}.")
    else:
        return False
    return True


INFERENCE_KEYS = ("image", "domain", "reference")


def _check_inference(where: str, target, nets, graph: ImageGraph, kinds: dict, problems: Problems) -> None:
    """``inference.<direction>``: a generator, a list of generators (applied in order), an image, or
    a mapping ``{image, domain: [label values], reference: image value}`` (a multi-domain entry)."""
    if OmegaConf.is_dict(target):
        _check_conditional(where, target, graph, problems)
    elif OmegaConf.is_list(target):
        for n in target:
            if n not in nets:
                problems.add(where, "unknown-network", f"network '{n}' is not defined.{closest(n, nets)}")
            elif kinds.get(n) == "discriminator":
                problems.add(where, "discriminator", f"'{n}' is a discriminator; translation applies generators.")
        if len(target) == 0:
            problems.add(where, "empty", "name at least one network.")
    elif not isinstance(target, str):
        problems.add(where, "bad-value", f"a network name, a list of networks, or an image name; got {target!r}.")
    elif target in nets:
        if kinds.get(target) == "discriminator":
            problems.add(where, "discriminator", f"'{target}' is a discriminator; translation applies generators.")
    elif target in graph.data:
        problems.add(where, "data-image", f"'{target}' is a data image; name a generator or an image made from it.")
    elif target in graph.nodes:
        sources = graph.sources(target)
        if len(sources) != 1:
            problems.add(where, "sources", f"image '{target}' is made from {', '.join(sorted(sources)) or 'no data image'}; "
                                           "translation needs an image made from exactly one data image.")
    else:
        problems.add(where, "unknown-image",
                     f"network or image '{target}' is not defined.{closest(target, [*nets, *graph.nodes])}")


def _check_conditional(where: str, entry, graph: ImageGraph, problems: Problems) -> None:
    """A multi-domain entry: a known image made from one data value besides those it is given."""
    for key in entry:
        if key not in INFERENCE_KEYS:
            problems.add(f"{where}.{key}", "unknown-key", f"not an inference key; the keys are {', '.join(INFERENCE_KEYS)}.")
    image, reference = entry.get("image"), entry.get("reference")
    domain = entry.get("domain") or []
    domain = [domain] if isinstance(domain, str) else list(domain)
    if not isinstance(image, str) or image not in graph.nodes:
        problems.add(f"{where}.image", "unknown-image", f"'{image}' is not an image of the recipe's graph.")
        return
    for value in [*domain, *([reference] if reference else [])]:
        if value not in graph:
            problems.add(where, "unknown-image", f"'{value}' is not a value of the recipe's graph.")
            return
    try:
        sources = graph.sources(image) - {*domain, reference}
    except (KeyError, RecursionError):  # an input that is malformed or in a loop: reported with the images
        return
    if len(sources) != 1:
        problems.add(where, "sources", f"'{image}' is made from {', '.join(sorted(sources)) or 'no data value'} besides "
                                       "what the entry sets (domain, reference): translation needs exactly one input.")


def _check_term(term, where, step, nets, check_component, problems: Problems) -> None:
    if sum(bool(k) for k in (term.adversarial, term.consistency, term.penalty)) != 1:
        problems.add(where, "bad-term", "set exactly one of 'adversarial' (a GAN loss), 'consistency' (e.g. l1) or "
                                        "'penalty' (a gradient penalty such as r1).")
        return
    for net in ([term.network] if term.network is not None else []) + list(term.networks):
        if net not in nets:
            problems.add(f"{where}.network" + ("s" if net in term.networks else ""), "unknown-network",
                         f"network '{net}' is not defined.{closest(net, nets)}")
    if term.every < 1:
        problems.add(f"{where}.every", "not-positive", f"must be at least 1, got {term.every}.")
    if (term.real_label or term.fake_label) and not (term.adversarial or term.penalty):
        problems.add(where, "bad-value", "real_label and fake_label go to a discriminator: only adversarial and "
                                         "penalty terms have them.")
    _check_discriminator_args(term, step, where, problems)
    if term.fake_label and term.pool:
        problems.add(f"{where}.pool", "pool-with-label", "an image pool keeps past fakes without their labels; set "
                                                         "pool: 0 for a term with fake_label.")
    if term.share is not None:
        other = step.losses.get(term.share)
        if other is None or other.share is not None or (other.adversarial, other.consistency) != (term.adversarial, term.consistency):
            problems.add(f"{where}.share", "bad-share", f"'{term.share}' must be another term of this step, with the "
                                                        "same loss, that does not itself share.")
        elif plugin_args(term.args):  # the shared module was built with the other term's args
            problems.add(f"{where}.args", "ignored-args", f"a term that shares '{term.share}' uses its loss module, "
                                                          f"built with its args; remove these or drop share.")
    if term.adversarial:
        check_component("adversarial_loss", term.adversarial, term.args, where)
        _check_discriminator(term, where, nets, problems)
        if not term.fake:
            problems.add(f"{where}.fake", "missing", "an adversarial term needs the generated image it judges.")
        if term.side not in (None, "generator", "discriminator"):
            problems.add(f"{where}.side", "bad-value", f"'{term.side}' is not generator or discriminator.")
        elif term_side(term, step) == "discriminator" and not term.real:
            problems.add(f"{where}.real", "missing", f"this step trains '{term.discriminator}', so the term needs a "
                                                     "real image.")
        elif term_side(term, step) == "generator" and (term.real_label or term.pool):
            problems.add(f"{where}.{'real_label' if term.real_label else 'pool'}", "ignored-args",
                         "the generator's side judges only its fakes (fake and fake_label), without an image pool; "
                         "remove it.")
    elif term.penalty:
        check_component("gradient_penalty", term.penalty, term.args, where)
        _check_discriminator(term, where, nets, problems)
        if not term.real:
            problems.add(f"{where}.real", "missing", "a gradient penalty needs the real image it is computed on.")
        if term.discriminator in nets and term.discriminator not in step.networks:
            problems.add(f"{where}.discriminator", "not-optimised", f"a penalty trains '{term.discriminator}', which "
                                                                    "this step does not optimise.")
        if term.side is not None:
            problems.add(f"{where}.side", "bad-value", "a penalty is always the discriminator's; remove side.")
        if term.pool:
            problems.add(f"{where}.pool", "ignored-args", "a penalty takes no image pool (its fakes, if any, are the "
                                                          "step's own); remove pool.")
    else:
        if term.side is not None:
            problems.add(f"{where}.side", "bad-value", "only adversarial terms have a side; remove it.")
        check_component("consistency_loss", term.consistency, term.args, where, injected=("network", "networks"))
        for key in ("input", "target"):
            if not term[key]:
                problems.add(f"{where}.{key}", "missing", "a consistency term needs 'input' and 'target' images.")


def _check_optimizer(sname: str, step, steps, problems: Problems) -> None:
    """An optimizer ``share`` names an earlier step that owns its optimizer and optimises this
    step's networks; ``groups`` name networks or loss terms (their heads) of the step."""
    where, opt = f"steps.{sname}.optimizer", step.optimizer
    for net in opt.groups:
        if net not in step.networks and net not in step.losses:
            problems.add(f"{where}.groups.{net}", "unknown-network", f"'{net}' is neither one of this step's networks "
                                                                    f"({', '.join(step.networks)}) nor one of its loss "
                                                                    f"terms ({', '.join(step.losses)}).")
    if opt.share is None:
        return
    names = list(steps)
    owner = steps.get(opt.share)
    if owner is None or names.index(opt.share) >= names.index(sname) or owner.optimizer.share is not None:
        problems.add(f"{where}.share", "bad-share", f"'{opt.share}' must be an earlier step with an optimizer of its "
                                                    "own (not itself sharing one).")
    elif set(step.networks) - set(owner.networks):
        problems.add(f"{where}.share", "bad-share", f"step '{opt.share}' does not optimise "
                                                    f"{', '.join(sorted(set(step.networks) - set(owner.networks)))}; "
                                                    "a shared optimizer updates its own networks only.")
    if plugin_args(opt.args) or opt.groups:
        problems.add(f"{where}.args", "ignored-args", f"a shared optimizer is '{opt.share}'s, built with its args; "
                                                      "remove these or drop share.")


def _check_discriminator_args(term: DictConfig, step: DictConfig, where: str, problems: Problems) -> None:
    """``discriminator_args``: keyword arguments for the calls on the images a term gives its
    discriminator: ``real`` and ``fake`` on the discriminator side, ``fake`` on the generator side,
    ``real`` for a penalty (its calls at the real images or at the interpolates)."""
    given = dict(term.discriminator_args or {})
    if not given:
        return
    if not (term.adversarial or term.penalty):
        problems.add(f"{where}.discriminator_args", "bad-value", "discriminator_args go to a discriminator: only "
                                                                 "adversarial and penalty terms have them.")
        return
    roles = (("real",) if term.penalty else ("fake",) if term_side(term, step) == "generator" else ("real", "fake"))
    for role in given:  # the schema makes each a mapping
        if role not in roles:
            problems.add(f"{where}.discriminator_args.{role}", "bad-key",
                         f"this term calls its discriminator on {' and '.join(roles)} images only; use "
                         f"{', '.join(roles)}.")


def _check_discriminator(term, where: str, nets, problems: Problems) -> None:
    if term.discriminator not in nets:
        problems.add(f"{where}.discriminator", "unknown-network", f"network '{term.discriminator}' is not defined.")


def _check_numbers(recipe: DictConfig, problems: Problems) -> None:
    """Counts and intervals that must be positive, and a device that exists."""
    tr = recipe.train
    positive = {"data.batch_size": recipe.data.batch_size, "train.epochs": tr.epochs, "train.log_every": tr.log_every,
                "train.sample_every": tr.sample_every, "train.checkpoint_every": tr.checkpoint_every,
                "train.keep_checkpoints": tr.keep_checkpoints, "train.max_nonfinite": tr.max_nonfinite}
    for key in ("max_iterations", "eval_every"):
        if tr[key] is not None:
            positive[f"train.{key}"] = tr[key]
    positive["eval.batch_size"] = recipe.eval.batch_size
    if not recipe.name or Path(recipe.name).name != recipe.name or recipe.name in (".", ".."):
        problems.add("name", "bad-value", f"a run's default folder is runs/<name>: a plain folder name, got "
                                          f"{recipe.name!r}; to train elsewhere, give --out (or out_dir).")
    if recipe.eval.split not in ("train", "test"):
        problems.add("eval.split", "bad-value", f"the split evaluated is train or test, got {recipe.eval.split!r}.")
    if recipe.eval.num_images is not None and recipe.eval.num_images < 2:
        problems.add("eval.num_images", "too-small", f"must be at least 2 (FID, KID and diversity compare image sets), "
                                                     f"got {recipe.eval.num_images}.")
    for name, net in recipe.networks.items():
        if not net.init_gain >= 0:  # NaN too
            problems.add(f"networks.{name}.init_gain", "negative", f"the init's standard deviation (or gain) must be "
                                                                     f"0 or more, got {net.init_gain}.")
    for sname, step in recipe.steps.items():
        positive[f"steps.{sname}.every"] = step.every
        positive[f"steps.{sname}.repeat"] = step.repeat
    for key, value in positive.items():
        if value < 1:
            problems.add(key, "not-positive", f"must be at least 1, got {value}.")
    if recipe.data.num_workers < 0:
        problems.add("data.num_workers", "negative", f"must be 0 or more, got {recipe.data.num_workers}.")
    if recipe.data.on_bad_file not in ("error", "skip"):
        problems.add("data.on_bad_file", "bad-value", f"'error' or 'skip', got '{recipe.data.on_bad_file}'.")
    for sname, step in recipe.steps.items():
        for tname, term in step.losses.items():
            if term.pool < 0:
                problems.add(f"steps.{sname}.losses.{tname}.pool", "negative", f"must be 0 (off) or more, got {term.pool}.")
    try:
        pick_device(recipe.device)
    except RecipeError as err:
        problems.add_error(err, "device", "bad-device")
    on_cuda = recipe.device.startswith("cuda") or (recipe.device == "auto" and torch.cuda.is_available())
    if tr.precision == "fp16" and not on_cuda:
        problems.add("train.precision", "needs-cuda", "fp16 needs CUDA; use bf16 on the CPU.")


def check(recipe: DictConfig, registry: Registry | None = None) -> DictConfig:
    """Validate a recipe; raise :class:`RecipeError` listing every problem at once (one line for one).

    Raises:
        RecipeError: its ``problems`` are :func:`validate`'s.
    """
    raise_problems(validate(recipe, registry))
    return recipe
