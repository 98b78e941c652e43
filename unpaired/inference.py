"""Translate images with a trained run: pick the generator of a direction, run it, write images."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.io import write_jpeg, write_png

from . import checkpoint
from .build import build_dataset, build_network, pick_device
from .data import IMAGE_EXTENSIONS, read_image
from .errors import CheckpointError, DataError, RecipeError
from .recipe import from_yaml, plugin_args
from .registry import Registry, closest, default_registry


class Translator:
    """A run's generator for one direction, ready to translate images.

    Args:
        run: a run directory (its latest checkpoint is used) or a checkpoint directory.
        direction: a key of the recipe's ``inference`` section, e.g. ``"AtoB"`` or ``"BtoA"``.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...

    Raises:
        CheckpointError: no usable checkpoint. RecipeError: unknown direction (lists the known).
    """

    def __init__(self, run: str | Path, direction: str = "AtoB", device: str = "auto", registry: Registry | None = None):
        recipe_yaml, weights = checkpoint.load_weights(Path(run))
        self.recipe = recipe = from_yaml(recipe_yaml)
        if direction not in recipe.inference:
            known = list(recipe.inference)
            raise RecipeError(f"direction '{direction}' is not in the recipe's inference section.{closest(direction, known)} Known: {', '.join(known) or '(none)'}.")
        self.net_name = recipe.inference[direction]
        self.source_domain = direction.split("to")[0] if "to" in direction else None
        self.device = pick_device(device)
        self.registry = registry or default_registry()
        for module in recipe.plugins:  # the run's own plugins (e.g. a custom generator)
            self.registry.register_plugin(module)
        self.generator = build_network(recipe, self.net_name, self.registry, init=False)
        try:
            self.generator.load_state_dict(weights[self.net_name])
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(f"{run}: weights of '{self.net_name}' missing or not matching ({err}).") from err
        self.generator.to(self.device).eval()
        args = plugin_args(recipe.networks[self.net_name].args)
        self.in_channels = args.get("in_channels", getattr(self.generator, "in_channels", 3))
        self.size_divisor = getattr(self.generator, "size_divisor", 1)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """Translate a batch (N, C, H, W) or one image (C, H, W) in [-1, 1]; same shape out, in [-1, 1].

        Sides that are not multiples of the generator's ``size_divisor`` are reflection-padded
        for the pass and cropped back.

        Raises:
            DataError: integer images (convert with ``x.float() / 127.5 - 1``), or sides under
                twice the generator's ``size_divisor``.
        """
        if not images.is_floating_point():
            raise DataError(f"images must be float in [-1, 1], got {images.dtype}; convert uint8 with x.float() / 127.5 - 1.")
        single = images.ndim == 3
        x = images[None] if single else images
        h, w = x.shape[-2:]
        if min(h, w) < 2 * self.size_divisor:
            raise DataError(f"image of {w}x{h} pixels is too small for {self.net_name}: sides of at least "
                            f"{2 * self.size_divisor} are needed.")
        ph, pw = -h % self.size_divisor, -w % self.size_divisor
        x = x.to(self.device, torch.float32)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        y = self.generator(x)[..., :h, :w].cpu()
        return y[0] if single else y

    def translate_file(self, src: Path, dst: Path) -> Path:
        """Translate one image file into ``dst`` (PNG, or JPEG for .jpg/.jpeg); returns the path."""
        img = read_image(src, self.in_channels)
        out = self(img.float() / 127.5 - 1.0)
        return write_image(out, dst)


def write_image(image: Tensor, dst: Path) -> Path:
    """Write an image (C, H, W) in [-1, 1] as JPEG (quality 95) for .jpg/.jpeg names, else PNG.

    Raises:
        DataError: the file cannot be written (names it).
    """
    u8 = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.suffix.lower() in (".jpg", ".jpeg"):
            write_jpeg(u8.expand(3, -1, -1) if u8.shape[0] == 1 else u8, str(dst), quality=95)
        else:
            write_png(u8, str(dst))
    except (OSError, RuntimeError) as err:
        raise DataError(f"{dst}: cannot write the image ({err}). Choose another --out.") from err
    return dst


def translate(run: str | Path, images: Tensor | str | Path, direction: str = "AtoB", device: str = "auto") -> Tensor:
    """One-call API: translate with a run (or checkpoint) directory.

    Args:
        images: a tensor (C, H, W) or (N, C, H, W) in [-1, 1], or an image file's path.

    Returns:
        The translation, same shape (C, H, W) / (N, C, H, W), in [-1, 1], on the CPU.
    """
    translator = Translator(run, direction, device)
    if isinstance(images, (str, Path)):
        images = read_image(Path(images), translator.in_channels).float() / 127.5 - 1.0
    return translator(images)


def translate_folder(translator: Translator, src: Path, dst: Path) -> list[Path]:
    """Translate every image of a folder (or one file) into ``dst`` with the same file names.

    Raises:
        DataError: the input has no images, or one cannot be decoded (names the file).
    """
    if not src.exists():
        raise DataError(f"{src}: not found.")
    files = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{src}: no images ({', '.join(IMAGE_EXTENSIONS)}) to translate.")
    if dst.resolve() in {f.parent.resolve() for f in files}:
        raise DataError(f"{dst}: the output folder is the input folder; translations would replace the "
                        "originals. Choose another --out.")
    return [translator.translate_file(f, dst / output_name(f.name)) for f in files]


def output_name(name: str) -> str:
    """The file name a translation is written under: the input's name for PNG and JPEG, else the
    name plus ``.png`` (``cat.webp`` -> ``cat.webp.png``), so that no two inputs share an output."""
    return name if Path(name).suffix.lower() in (".png", ".jpg", ".jpeg") else name + ".png"


def translate_split(translator: Translator, split: str, dst: Path) -> list[Path]:
    """Translate the source domain's ``split`` of the run's own dataset (e.g. the test images)."""
    recipe = translator.recipe
    domain = translator.source_domain
    if domain not in ("A", "B"):
        raise RecipeError("translating a dataset split needs a direction named <source>to<target>, e.g. AtoB.")
    data = build_dataset(recipe, translator.registry)
    ds = data.domain(domain, split)
    out = []
    for i in range(len(ds)):
        image, name = ds[i]
        out.append(write_image(translator(image), dst / name))
    return out
