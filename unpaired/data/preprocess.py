"""Preprocessing: what a decoded image goes through before the network sees it.

The options follow the reference implementation by name (Zhu et al., ICCV 2017; Isola et al., CVPR
2017; the authors' ``data/base_dataset.py``, ``--preprocess``), plus one of ours:

=============================  =====================================================================
``scale_shorter_side_and_crop`` resize (aspect ratio kept) so the shorter side is ``load_size``,
                                then crop ``crop_size`` (ours; the default of the folder datasets)
``resize_and_crop``             resize to ``load_size`` exactly (a square when it is one number, so
                                non-square images are stretched), then crop (the reference default)
``scale_width``                 resize so the width is ``load_size`` (aspect ratio kept; height at
                                least ``crop_size``, rounded to a multiple of 4); no crop, so sizes
                                vary with the aspect ratio
``scale_width_and_crop``        ``scale_width``, then crop
``crop``                        crop only
``none``                        resize to the nearest multiple of 4 in each side (as the reference)
=============================  =====================================================================

Sizes are one number (a square) or ``[H, W]``. A crop is random when training and centred
otherwise; the horizontal flip is random when training with ``flip``. Resizes are bicubic with
antialiasing; the result is a float tensor in [-1, 1] (mean 0.5, std 0.5 per channel).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

#: The ``preprocess`` options, the default first.
PREPROCESS = ("scale_shorter_side_and_crop", "resize_and_crop", "scale_width", "scale_width_and_crop", "crop", "none")
_BICUBIC = v2.InterpolationMode.BICUBIC


def _pair(size, key: str) -> tuple[int, int]:
    """``size`` (an int or ``[H, W]``) as (H, W) of positive ints; ValueError naming ``key`` otherwise."""
    values = list(size) if isinstance(size, (list, tuple)) or hasattr(size, "__len__") else [size, size]
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{key}: a positive number of pixels or [H, W], got {size}")
    return int(values[0]), int(values[1])


def check_preprocess(preprocess: str, load_size, crop_size) -> None:
    """Refuse a preprocessing that cannot work, naming the argument (``data.args.<name>``).

    Raises:
        ValueError: an unknown option, a malformed size, a ``[H, W]`` load size where the option
            takes one side, or a crop larger than the resized image is sure to be.
    """
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess: unknown option '{preprocess}'; choose one of {', '.join(PREPROCESS)}")
    crop = _pair(crop_size, "crop_size")
    load = _pair(load_size, "load_size")
    one_side = preprocess in ("scale_shorter_side_and_crop", "scale_width", "scale_width_and_crop")
    if one_side and load[0] != load[1]:
        raise ValueError(f"load_size: {preprocess} resizes one side to load_size, so it takes one number, got "
                         f"{load_size}; for an exact [H, W] use preprocess: resize_and_crop")
    if preprocess == "scale_shorter_side_and_crop" and max(crop) > load[0]:
        raise ValueError(f"crop_size {crop_size} is larger than the shorter side load_size {load_size}")
    if preprocess == "resize_and_crop" and (crop[0] > load[0] or crop[1] > load[1]):
        raise ValueError(f"crop_size {crop_size} is larger than load_size {load_size}")
    if preprocess == "scale_width_and_crop" and crop[1] > load[1]:
        raise ValueError(f"crop_size {crop_size} is wider than the width load_size {load_size}")


class ResizeBy(v2.Transform):
    """Resize each image to ``size_of(H, W) -> (h, w)`` (bicubic, antialiased): a size that depends
    on the image's own, which :class:`torchvision.transforms.v2.Resize` cannot express. Both images
    of a pair have the same size, so they get the same resize."""

    def __init__(self, size_of: Callable[[int, int], tuple[int, int]]):
        super().__init__()
        self.size_of = size_of

    def transform(self, inpt, params):
        h, w = inpt.shape[-2:]
        size = self.size_of(h, w)
        return inpt if size == (h, w) else v2.functional.resize(inpt, list(size), interpolation=_BICUBIC, antialias=True)


class ScaleWidth:
    """The reference's ``__scale_width``: width ``width``, height ``max(int(width * H / W), min_height)``
    (unchanged when the width already is ``width`` and the height at least ``min_height``), then
    the height rounded up to a multiple of ``base``. The rounding is ours: the reference keeps any
    height, which its generators (and ours) cannot take unless it is a multiple of 4."""

    def __init__(self, width: int, min_height: int, base: int = 4):
        self.width, self.min_height, self.base = width, min_height, base

    def __call__(self, h: int, w: int) -> tuple[int, int]:
        if not (w == self.width and h >= self.min_height):
            h, w = max(int(self.width * h / w), self.min_height), self.width
        return -(-h // self.base) * self.base, w  # up, so the height stays at least min_height


class MultipleOf:
    """The reference's ``__make_power_2``: each side rounded to the nearest multiple of ``base``."""

    def __init__(self, base: int = 4):
        self.base = base

    def __call__(self, h: int, w: int) -> tuple[int, int]:
        return max(self.base, round(h / self.base) * self.base), max(self.base, round(w / self.base) * self.base)


class Crop(v2.Transform):
    """Crop ``size`` (H, W): at a random position (the draws of :class:`v2.RandomCrop`) or centred
    (the position of :func:`v2.functional.center_crop`); every image of a call gets the same crop.

    Raises:
        ValueError: the image is smaller than the crop (says both sizes); a crop never pads.
    """

    def __init__(self, size: tuple[int, int], random: bool):
        super().__init__()
        self.size, self.random = size, random

    def make_params(self, flat_inputs: list) -> dict:
        h, w = next(i for i in flat_inputs if isinstance(i, Tensor)).shape[-2:]
        ch, cw = self.size
        if h < ch or w < cw:
            raise ValueError(f"the crop {ch}x{cw} (H x W) is larger than the image {h}x{w} after resizing; "
                             "lower crop_size or raise load_size")
        if self.random:
            top = int(torch.randint(0, h - ch + 1, size=())) if h > ch else 0
            left = int(torch.randint(0, w - cw + 1, size=())) if w > cw else 0
        else:
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return {"top": top, "left": left}

    def transform(self, inpt, params):
        return v2.functional.crop(inpt, params["top"], params["left"], *self.size)


class Clamp(v2.Transform):
    """Clamp to [-1, 1]: bicubic resizing of a float image (16-bit, float TIFF) can overshoot."""

    def transform(self, inpt, params):
        return inpt.clamp(-1, 1)


class TrainingResize:
    """The resize of a preprocessing, without its crop or flip: ``resize(H, W) -> (h, w)``, the size
    an H x W image has when the networks see it in training (``crop`` resizes nothing: (H, W)).

    Translation resizes to it so that a model meets the scale it learnt, whatever the input's
    size (:class:`unpaired.inference.translator.Translator`).

    Raises:
        ValueError: see :func:`check_preprocess`.
    """

    def __init__(self, preprocess: str, load_size, crop_size):
        check_preprocess(preprocess, load_size, crop_size)
        self.preprocess, self.load, self.crop = preprocess, _pair(load_size, "load_size"), _pair(crop_size, "crop_size")

    def __call__(self, h: int, w: int) -> tuple[int, int]:
        if self.preprocess == "scale_shorter_side_and_crop":  # as v2.Resize(int): the longer side rounded down
            short = self.load[0]
            return (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
        if self.preprocess == "resize_and_crop":
            return self.load
        if self.preprocess.startswith("scale_width"):
            return ScaleWidth(self.load[1], self.crop[0])(h, w)
        if self.preprocess == "none":
            return MultipleOf(4)(h, w)
        return h, w

    def describe(self) -> str:
        """``resize_and_crop: 286x286``, as summaries and export metadata say it."""
        size = {"scale_shorter_side_and_crop": f"the shorter side to {self.load[0]}",
                "resize_and_crop": f"{self.load[0]}x{self.load[1]}", "scale_width": f"the width to {self.load[1]}",
                "scale_width_and_crop": f"the width to {self.load[1]}", "none": "sides to multiples of 4",
                "crop": "no resize"}[self.preprocess]
        return f"{self.preprocess}: {size}"


def image_transform(load_size, crop_size, flip: bool, train: bool,
                    preprocess: str = "scale_shorter_side_and_crop") -> v2.Compose:
    """The preprocessing ``preprocess`` (see the module docstring) for one image.

    Takes uint8 (C, H, W), or float (C, H, W) in [0, 1] (what :func:`unpaired.data.io.read_image`
    gives for 16-bit and float files); returns float32 (C, h, w) in [-1, 1]: (crop H, crop W) for
    the cropping options, otherwise a size that follows the image's.

    Raises:
        ValueError: see :func:`check_preprocess`.
    """
    check_preprocess(preprocess, load_size, crop_size)
    load, crop = _pair(load_size, "load_size"), _pair(crop_size, "crop_size")
    steps: list[v2.Transform] = []
    if preprocess == "scale_shorter_side_and_crop":
        steps.append(v2.Resize(load[0], interpolation=_BICUBIC, antialias=True))
    elif preprocess == "resize_and_crop":
        steps.append(v2.Resize(list(load), interpolation=_BICUBIC, antialias=True))
    elif preprocess.startswith("scale_width"):
        steps.append(ResizeBy(ScaleWidth(load[1], crop[0])))
    elif preprocess == "none":
        steps.append(ResizeBy(MultipleOf(4)))
    if preprocess.endswith("crop"):
        steps.append(Crop(crop, random=train))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5], [0.5]), Clamp()]
    return v2.Compose(steps)


class PairedTransform:
    """One image transform applied to two images with ONE draw of its random parameters.

    ``t(img_a, img_b) -> (out_a, out_b)``: (C_A, H, W) and (C_B, H, W) images (the channel counts
    may differ, H and W may not) to plain float tensors. Both images are wrapped as
    ``tv_tensors.Image`` so that torchvision's v2 transforms treat both as images (given two plain
    tensors, v2 transforms only the first and passes the second through untouched) and share the
    random parameters (crop position, flip) of the call. Draws come from torch's global generator:
    seed it (as :class:`unpaired.data.pairs.AlignedPairs` does) for reproducible output.

    Raises:
        ValueError: the two images differ in height or width.
    """

    def __init__(self, transform: v2.Transform):
        self.transform = transform

    def __call__(self, img_a: Tensor, img_b: Tensor) -> tuple[Tensor, Tensor]:
        if img_a.shape[-2:] != img_b.shape[-2:]:
            raise ValueError(f"the images of a pair differ in size: {tuple(img_a.shape[-2:])} and {tuple(img_b.shape[-2:])} (H, W)")
        out_a, out_b = self.transform(tv_tensors.Image(img_a), tv_tensors.Image(img_b))
        return out_a.as_subclass(Tensor), out_b.as_subclass(Tensor)

    def __repr__(self) -> str:
        return f"PairedTransform({self.transform})"


def paired_transform(load_size, crop_size, flip: bool, train: bool,
                     preprocess: str = "scale_shorter_side_and_crop") -> PairedTransform:
    """:func:`image_transform` for the two images of a pair, with one crop and one flip for both.

    Takes (C_A, H, W) and (C_B, H, W), returns float32 (C_A, h, w) and (C_B, h, w) in [-1, 1].
    Outside training the result is deterministic and equals :func:`image_transform` applied to
    each image.
    """
    return PairedTransform(image_transform(load_size, crop_size, flip, train, preprocess))
