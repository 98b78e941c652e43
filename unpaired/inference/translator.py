"""Translate images with a trained run: pick the generator of a direction, run it (whole or in
tiles), write images. Many images at once: :mod:`unpaired.inference.batch`."""

from __future__ import annotations

import copy
import math
import os
from contextlib import nullcontext
from pathlib import Path

import PIL.Image
import torch
from omegaconf import OmegaConf
from torch import Tensor
from torchvision.io import encode_jpeg, encode_png
from torchvision.transforms import v2

from unpaired.data.build import build_dataset
from unpaired.data.io import read_image, to_float, to_uint8
from unpaired.data.multidomain import domain_label
from unpaired.domains import domain_channels
from unpaired.engine.build import build_network
from unpaired.errors import CheckpointError, DataError, RecipeError, UnpairedError
from unpaired.inference.scale import training_resize
from unpaired.inference.tiling import pad_to, translate_tiled
from unpaired.plugin.registry import Registry, closest
from unpaired.recipe.resolved import ResolvedRecipe, resolve
from unpaired.runs import checkpoint
from unpaired.runs.rundir import load
from unpaired.runtime.device import pick_device, resolve_precision

#: Images above this many pixels are translated in tiles unless told otherwise (``tile=0``): the
#: 9-block ResNet generator at ngf 64 peaks at about 0.9 kB per pixel on the CPU (923 MiB at
#: 1024x1024, benchmarks/translate.py), so 3.7 GB here and 11 GB for a 4000x3000 photo.
AUTO_TILE_PIXELS = 2048 * 2048
#: The tile side used then.
AUTO_TILE = 1024
#: At which scale images are translated: the training images' (resized as the preprocessing did), or their own.
SCALES = ("train", "native")


def load_networks(recipe: ResolvedRecipe, names, weights: dict, source, device: torch.device) -> dict[str, torch.nn.Module]:
    """Networks ``names`` of a recipe built by their plugins (no init) with their saved weights,
    on ``device`` in eval mode. A network without parameters or buffers has no weights to load.

    Args:
        weights: network name -> state dict, as :func:`unpaired.runs.checkpoint.load_weights` gives them.
        source: the run or checkpoint the weights come from (named in errors).

    Raises:
        RecipeError: a network plugin that is not installed or rejects its args (with the run's
            plugin modules that could not be imported, if any).
        CheckpointError: weights missing or not matching the network (names ``source``).
    """
    nets = {}
    for name in names:
        try:
            net = build_network(recipe, recipe.networks[name], init=False)
        except RecipeError as err:
            hint = f" (the run's plugin modules that could not be imported: {recipe.plugin_error})" if recipe.plugin_error else ""
            raise RecipeError(f"{err}{hint}", key=err.key, code=err.code) from err
        if net.state_dict() or weights.get(name):
            try:
                net.load_state_dict(weights[name])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(f"{source}: weights of '{name}' missing or not matching ({err}).", key=name,
                                      code="weights-mismatch") from err
        nets[name] = net.to(device).eval()
    return nets


class Translator:
    """A run's translation for one direction, reusable across calls.

    The recipe's ``inference.<direction>`` names a generator, a chain of networks applied in
    order (e.g. an encoder then a decoder), or an image of the recipe's graph made from one data
    image (e.g. ``fake_B``). Only the networks it needs are built and loaded, so a run trained
    with a custom loss plugin translates where that plugin is not installed.

    A multi-domain, multimodal model's entry is a mapping, ``{image: fake_lat, domain: [ref_domain],
    reference: ref}``: the graph value to make, the label values the target domain (``to``) sets,
    and the image value a reference image (``reference``) sets; random values (style codes) are
    drawn once from a generator seeded by ``seed`` and shared by every image: one seed, one style.

    Args:
        run: a run directory (its latest checkpoint is used) or a checkpoint directory.
        direction: a key of the recipe's ``inference`` section, e.g. ``"AtoB"`` or ``"BtoA"``.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        precision: ``fp32`` (default), ``bf16`` or ``fp16`` autocast, or ``auto`` (bf16 where
            the device computes it natively, else fp32).
        scale: ``"train"`` (default): each image is resized as the run's preprocessing resized the
            training images (not cropped, not flipped; :mod:`unpaired.inference.scale`), translated,
            and the translation resized back to the image's own size; ``"native"``: translated at
            its own size. A run whose recipe does not say how it resized translates natively.
        tile: None (automatic: tiles of :data:`AUTO_TILE` pixels for images above
            :data:`AUTO_TILE_PIXELS` pixels), 0 (never tile), or a tile side in pixels
            (:mod:`unpaired.inference.tiling`).
        overlap: pixels shared by neighbouring tiles.
        to: the target domain of a multi-domain entry: its name (case-insensitive) or label.
        seed: the seed of the random values (style codes) of a multimodal entry.
        reference: the reference image whose style a reference-guided entry takes: (C, H, W) in
            [-1, 1] or an image file's path.

    Raises:
        CheckpointError: no usable checkpoint, or weights that do not fit.
        RecipeError: unknown direction (lists the known ones; for an imported model without that
            direction's generator, says why), a network plugin that is not installed, or fp16 on
            the CPU.
    """

    def __init__(self, run: str | Path, direction: str = "AtoB", device: str = "auto", registry: Registry | None = None,
                 precision: str = "fp32", tile: int | None = None, overlap: int = 64, weights: str | None = None,
                 scale: str = "train", to: str | int | None = None, seed: int = 0, reference=None):
        self._options(precision, tile, overlap)
        if scale not in SCALES:
            raise RecipeError(f"scale: '{scale}' is not one of {', '.join(SCALES)}.", key="scale", code="bad-value")
        loaded = load(run, weights=weights)
        why = checkpoint.source(loaded.checkpoint).get("unavailable", {}).get(direction)
        if why:  # an imported model without this direction's generator says why
            raise RecipeError(f"{run}: direction '{direction}' is not available: {why}.", key=direction,
                              code="unavailable")
        # the run's recipe was checked when it trained: only the networks' plugins are needed now
        self._plan(resolve(loaded.recipe, registry, checked=False), direction, pick_device(device))
        self.weights = loaded.weight_set
        self.resize = training_resize(self.recipe) if scale == "train" else None
        self.nets = load_networks(self.recipe, self.names, loaded.weights, run, self.device)
        self._finish()
        self.condition(to, seed, reference)

    @classmethod
    def from_networks(cls, recipe: ResolvedRecipe, nets: dict, direction: str, device: torch.device) -> "Translator":
        """A translator over networks in memory (e.g. a training run's, for evaluation): ``nets``
        maps recipe names to modules on ``device``; they are used as they are (their train/eval
        mode is the caller's business), and only the ones the direction needs are kept. Images are
        translated at their own size (the evaluation's are preprocessed already).

        Raises:
            RecipeError: unknown direction.
        """
        self = cls.__new__(cls)
        self._options("fp32", None, 64)
        self._plan(recipe, direction, torch.device(device))
        missing = [n for n in self.names if n not in nets]
        if missing:
            raise RecipeError(f"direction {direction} needs the networks {', '.join(self.names)}; "
                              f"missing: {', '.join(missing)}.", key=direction, code="missing-network")
        self.weights, self.resize = None, None
        self.nets = {name: nets[name] for name in self.names}
        self._finish()
        self.seed, self.target, self.reference = 0, None, None  # set by condition() before a call
        return self

    def _options(self, precision: str, tile: int | None, overlap: int) -> None:
        if precision not in ("fp32", "bf16", "fp16", "auto"):
            raise RecipeError(f"precision: '{precision}' is not one of fp32, bf16, fp16, auto.",
                              key="precision", code="bad-value")
        if tile is not None and (tile < 0 or (tile and not 0 <= overlap < tile)):
            raise RecipeError(f"tile {tile} / overlap {overlap}: the tile is 0 (off) or a side in pixels larger "
                              "than the overlap (at least 0).", key="tile", code="bad-value")
        self.precision, self.tile, self.overlap = precision, tile, overlap

    def _plan(self, recipe: ResolvedRecipe, direction: str, device: torch.device) -> None:
        """Which networks (``names``) and which computation the direction uses."""
        self.recipe = recipe
        if direction not in recipe.inference:
            known = list(recipe.inference)
            raise RecipeError(f"direction '{direction}' is not in the recipe's inference section.{closest(direction, known)} "
                              f"Known: {', '.join(known) or '(none)'}.", key=direction, code="unknown-direction")
        self.direction, target = direction, recipe.inference[direction]
        self.device = device
        self.graph = recipe.graph
        self.domain_values, self.reference_value = (), None
        if OmegaConf.is_dict(target):  # a multi-domain entry: the image, what --to and --style-from set
            self.domain_values = tuple(target.get("domain") or ())
            self.reference_value = target.get("reference")
            given = {*self.domain_values, self.reference_value}
            self.image, self.chain = target.image, None
            self.source = (self.graph.sources(target.image) - given).pop()
            self.names = sorted(self.graph.networks(target.image, ops=True))
        elif isinstance(target, str) and target not in recipe.networks:  # an image of the graph
            self.image, self.chain, self.source = target, None, self.graph.sources(target).pop()
            self.names = sorted(self.graph.networks(target, ops=True))
        else:  # a network, or networks applied in order
            self.image, self.source = None, None
            self.chain = self.names = [target] if isinstance(target, str) else list(target)
        self.net_name = target if isinstance(target, str) else self.image if self.domain_values else " -> ".join(target)

    def _finish(self) -> None:
        domain = self.source[-1] if self.source else (self.direction.split("to")[0] if "to" in self.direction else None)
        self.source_domain = domain
        self.in_channels = self._in_channels(domain)
        self.size_divisor = math.lcm(*(getattr(n, "size_divisor", 1) for n in self.nets.values()))
        if self.tile and self.tile < 2 * self.size_divisor:
            raise RecipeError(f"tile {self.tile}: {self.net_name} needs tiles of at least {2 * self.size_divisor} "
                              f"pixels (its feature maps shrink {self.size_divisor}x).", key="tile", code="too-small")
        self.precision = resolve_precision(self.precision, self.device)
        if self.precision == "fp16" and self.device.type == "cpu":  # as train.precision: emulated, slower than fp32
            raise RecipeError("precision fp16 needs a GPU; on the CPU use bf16 or auto (bf16 where native) or fp32.",
                              key="precision", code="needs-gpu")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def _in_channels(self, domain) -> int:
        """The first network's ``in_channels``, else the source domain's channel count."""
        if self.chain:
            first = self.nets[self.chain[0]]
            args = self.recipe.networks[self.chain[0]].spec.args
            if "in_channels" in args or hasattr(first, "in_channels"):
                return args.get("in_channels", getattr(first, "in_channels", 3))
        value = self.recipe.data.args.get("channels", 3)
        if isinstance(value, int):
            return value
        return domain_channels(value, domain) if domain in ("A", "B") else 3

    @property
    def draws(self) -> bool:
        """Whether the output depends on the seed: the direction's image needs a random value or
        an op that draws noise (a latent-guided style code, UNSB's sampling). A generator, and a
        reference-guided entry, translate the same for every seed."""
        if self.image is None:
            return False
        given = {self.source, *self.domain_values, self.reference_value}
        nodes = [self.graph.nodes[n] for n in self.graph.order([self.image]) if n not in given]
        return any(node.random is not None or node.op for node in nodes)

    def condition(self, to=None, seed: int = 0, reference=None) -> None:
        """Set what a multi-domain, multimodal entry translates to: the target domain ``to`` (name
        or label), the ``seed`` of its random style codes, the ``reference`` image (a tensor
        (C, H, W) in [-1, 1] or a path) whose style it takes.

        Raises:
            RecipeError: the entry needs a target domain or a reference that is not given, or
                ``to`` is no domain of the run's dataset (lists them).
            DataError: the reference image cannot be read.
        """
        if to is not None and not self.domain_values:
            raise RecipeError(f"direction '{self.direction}' has no target domain to choose; --to is for a "
                              "multi-domain entry of the recipe's inference section.", key="--to", code="no-domain")
        self.seed = int(seed)
        self.target = None if to is None else self._label(to)
        if self.domain_values and self.target is None:
            raise RecipeError(f"direction '{self.direction}' translates into a domain: give it (--to NAME or LABEL; "
                              f"{self._domains_text()}).", key="--to", code="needs-domain")
        self.reference = None
        if reference is not None:
            if not self.reference_value:
                raise RecipeError(f"direction '{self.direction}' takes no reference image; use a reference-guided "
                                  "entry of the recipe's inference section.", key="--style-from", code="no-reference")
            ref = to_float(read_image(Path(reference), self.in_channels)) if isinstance(reference, (str, Path)) else reference
            ref = ref[None] if isinstance(ref, Tensor) and ref.ndim == 3 else ref
            if not isinstance(ref, Tensor) or not ref.is_floating_point() or ref.ndim != 4 or ref.shape[1] != self.in_channels:
                got = f"shape {tuple(ref.shape)} {ref.dtype}" if isinstance(ref, Tensor) else type(ref).__name__
                raise DataError(f"the reference image must be a float tensor (C, H, W) or (N, C, H, W) in [-1, 1] with "
                                f"{self.in_channels} channel(s), or an image file; got {got}.", code="bad-reference")
            self.reference = ref
        elif self.reference_value:
            raise RecipeError(f"direction '{self.direction}' takes the style of a reference image: give one "
                              "(--style-from IMAGE).", key="--style-from", code="needs-reference")

    def set_steps(self, steps: int) -> None:
        """Translate with ``steps`` steps of the direction's multi-step sampler (UNSB's NFE, its
        ``sb_sample`` op: ``unpaired translate --steps``).

        Raises:
            RecipeError: the direction has no multi-step sampler, or ``steps`` is outside its range.
        """
        names = self.graph.order([self.image]) if self.image else []
        samplers = [n for n in names if hasattr(self.graph.ops.get(n), "steps")]
        if not samplers:
            raise RecipeError(f"direction '{self.direction}' ({self.net_name}) has no multi-step sampler; --steps is "
                              "for a recipe whose inference image is an op with steps (UNSB's sb_sample).",
                              key="--steps", code="no-steps")
        # this translator's own copies: the graph and its ops may be a training run's (from_networks)
        graph, ops = copy.copy(self.graph), dict(self.graph.ops)
        for name in samplers:
            ops[name] = copy.copy(ops[name])
            try:
                ops[name].steps = steps
            except ValueError as err:
                raise RecipeError(f"--steps: {err}.", key="--steps", code="bad-value") from None
        graph.ops, self.graph = ops, graph

    def domain_names(self) -> list[str] | None:
        """The names of the run's domains (its dataset's ``domain_names``), or None when its dataset
        has none or cannot be opened here."""
        if not hasattr(self, "_domain_names"):
            try:
                data = build_dataset(self.recipe)
            except (UnpairedError, ValueError, TypeError):
                data = None
            self._domain_names = list(getattr(data, "domain_names", None) or []) or None
        return self._domain_names

    def _domains_text(self) -> str:
        names = self.domain_names()
        return "domains: " + ", ".join(f"{i} {n}" for i, n in enumerate(names)) if names else "a label 0, 1, ..."

    def _label(self, to) -> int:
        label = domain_label(self.domain_names(), to)
        if label is not None:
            return label
        raise RecipeError(f"no domain '{to}' in this run ({self._domains_text()}).", key="--to", code="unknown-domain")

    def _pass(self, x: Tensor) -> Tensor:
        """One forward pass of a padded batch, under the precision's autocast; float32 out."""
        amp = torch.autocast(self.device.type, self.autocast_dtype) if self.autocast_dtype else nullcontext()
        with amp:
            return self._run(x).float()

    def _run(self, x: Tensor) -> Tensor:
        if self.image is None:
            for name in self.chain:
                x = self.nets[name](x)
            return x
        return self.values(x)[self.image]

    def values(self, x: Tensor) -> dict[str, Tensor]:
        """Every value of the graph the direction's image needs, from images ``x`` (N, C, H, W) at
        the networks' scale and the condition (target domain, seed, reference)."""
        inputs = {self.source: x}
        if (self.domain_values and self.target is None) or (self.reference_value and self.reference is None):
            raise RecipeError(f"direction '{self.direction}' needs its target domain and reference: call "
                              "condition(to=..., reference=...) first.", key=self.direction, code="needs-condition")
        for value in self.domain_values:
            inputs[value] = torch.full((len(x),), self.target, dtype=torch.long, device=x.device)
        if self.reference_value:
            ref = _resize(self.reference.to(x.device, torch.float32), tuple(x.shape[-2:]))
            inputs[self.reference_value] = ref.expand(len(x), -1, -1, -1)
        # one seed, one style: each random value drawn once and shared by every image, batch and tile
        generator = torch.Generator().manual_seed(self.seed)
        for name in self.graph.order([self.image]):
            node = self.graph.nodes[name]
            if node.random is not None and name not in inputs:
                value = node.random.draw(1, generator, x.device)
                inputs[name] = value.expand(len(x), *value.shape[1:])
        return self.graph.compute([self.image], self.nets, inputs, generator)

    @torch.no_grad()
    def __call__(self, images):
        """Translate images.

        Args:
            images: a float tensor (N, C, H, W) or (C, H, W) in [-1, 1]; a PIL image; or an image
                file's path.

        Returns:
            A tensor of the input's shape in [-1, 1] on the CPU (the channels of the output
            domain); a PIL image for a PIL image; (C, H, W) for a path.

        The output has the input's height and width. At ``scale="train"`` the images are resized to
        the training scale first (:meth:`size_for`; bicubic, antialiased) and the translations
        back. Sides that are not multiples of the networks' ``size_divisor`` are padded
        (reflection, or replication where the image is too small to reflect) for the pass and
        cropped back; large images go through in overlapping tiles (see ``tile``).

        Raises:
            DataError: integer tensors (convert with ``x.float() / 127.5 - 1``), a channel count
                other than the model's, an unreadable file, or an image too small for the
                networks (a side under ``2 * size_divisor`` pixels where they fail on it).
        """
        if isinstance(images, (str, Path)):
            images = to_float(read_image(Path(images), self.in_channels))
        elif isinstance(images, PIL.Image.Image):
            u8 = v2.functional.pil_to_tensor(images.convert("RGB" if self.in_channels == 3 else "L"))
            return v2.functional.to_pil_image(to_uint8(self(u8.float() / 127.5 - 1.0)))
        if not isinstance(images, Tensor) or not images.is_floating_point():
            kind = images.dtype if isinstance(images, Tensor) else type(images).__name__
            raise DataError(f"images must be float tensors in [-1, 1], PIL images or file paths; got {kind} "
                            "(convert uint8 tensors with x.float() / 127.5 - 1).", code="not-float")
        single = images.ndim == 3
        x = images[None] if single else images
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise DataError(f"{self.net_name} translates images of {self.in_channels} channel(s), (N, C, H, W) or "
                            f"(C, H, W); got shape {tuple(images.shape)}. Give {'grey' if self.in_channels == 1 else 'RGB'} "
                            "images (files are converted on reading).", code="channels")
        size = tuple(x.shape[-2:])
        x = _resize(x.to(self.device, torch.float32), self.size_for(*size))
        h, w = x.shape[-2:]
        tile = self.tile if self.tile is not None else (AUTO_TILE if h * w > AUTO_TILE_PIXELS else 0)
        try:
            if tile and max(h, w) > tile:
                y = translate_tiled(self._pass, x, tile, self.overlap, self.size_divisor)
            else:
                y = self._pass(pad_to(x, self.size_divisor))[..., :h, :w].cpu()
        except (RuntimeError, ValueError) as err:
            if isinstance(err, torch.OutOfMemoryError) or min(h, w) >= 2 * self.size_divisor:
                raise
            # e.g. a 1x1 image, or a 3-pixel-wide strip: the deepest feature maps are 1 pixel wide
            raise DataError(f"a {h}x{w} image is too small for "
                            f"{self.net_name}, whose feature maps shrink {self.size_divisor}x: give images of "
                            f"at least {2 * self.size_divisor} pixels a side ({str(err).splitlines()[0]}).",
                            code="too-small") from err
        y = _resize(y, size)
        return y[0] if single else y

    def size_for(self, h: int, w: int) -> tuple[int, int]:
        """The size an h x w image is translated at: the training scale's (``scale="train"``, when
        the run's recipe says how it resized), else its own."""
        return tuple(self.resize(h, w)) if self.resize is not None else (h, w)

    def translate_file(self, src: Path, dst: Path) -> Path:
        """Translate one image file into ``dst`` (PNG, or JPEG for .jpg/.jpeg); returns the path."""
        return write_image(self(Path(src)), Path(dst))


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Images (N, C, H, W) in [-1, 1] at ``size`` (bicubic, antialiased, as the preprocessing
    resizes), clamped to [-1, 1]; unchanged when they have it."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return v2.functional.resize(x, list(size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True).clamp(-1, 1)


def write_image(image: Tensor, dst: Path) -> Path:
    """Write an image (C, H, W) in [-1, 1] as JPEG (quality 95) for .jpg/.jpeg names, else PNG;
    one channel gives a greyscale file, three an RGB one.

    The file is encoded in memory, written to a temporary file beside ``dst``, flushed to disk and
    renamed: a write that fails (a full disk, an I/O error) leaves no partial file behind.

    Raises:
        DataError: the file cannot be written (names it and the free space), code ``write-failed``.
    """
    u8 = to_uint8(image)
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.suffix.lower() in (".jpg", ".jpeg"):
            data = encode_jpeg(u8, quality=95)
        else:
            data = encode_png(u8)
        with open(tmp, "wb") as f:
            f.write(data.numpy().tobytes())
            f.flush()
            os.fsync(f.fileno())  # a full disk shows here at the latest, not in a truncated image later
        os.replace(tmp, dst)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{dst}: cannot write the image ({err}; {checkpoint.free_space(dst.parent)}). Free some space or choose "
                        "another --out.", key=str(dst), code="write-failed") from err
    return dst


def translate(run: str | Path, images, direction: str = "AtoB", device: str = "auto", scale: str = "train"):
    """One-call API: translate with a run (or checkpoint) directory. For many calls, build a
    :class:`Translator` once.

    Args:
        images: a tensor (C, H, W) or (N, C, H, W) in [-1, 1], a PIL image, or an image file's path.
        scale: "train" (at the training scale) or "native", as :class:`Translator`.

    Returns:
        The translation: a tensor of the input's shape in [-1, 1] on the CPU ((C, H, W) for a
        path), or a PIL image for a PIL image.
    """
    return Translator(run, direction, device, scale=scale)(images)
