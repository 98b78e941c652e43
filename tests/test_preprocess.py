"""The preprocessing options (reference names), rectangular sizes, and the errors they give."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from unpaired.errors import DataError, RecipeError
from unpaired.data.preprocess import PREPROCESS, check_preprocess, image_transform, paired_transform
from unpaired.plugin.registry import default_registry

# A non-square image: 60 high, 100 wide.
IMAGE = torch.randint(0, 256, (3, 60, 100), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("preprocess, load, crop, train_shape", [
    ("scale_shorter_side_and_crop", 30, 24, (3, 24, 24)),   # 60x100 -> 30x50 -> crop
    ("resize_and_crop", 30, 24, (3, 24, 24)),               # 60x100 -> 30x30 (stretched) -> crop
    ("resize_and_crop", [30, 40], [20, 36], (3, 20, 36)),   # rectangular load and crop
    ("scale_width", 50, 24, (3, 32, 50)),                   # width 50, height 50*60/100 = 30, up to 32 (x4)
    ("scale_width", 50, 40, (3, 40, 50)),                   # ... but at least crop_size high
    ("scale_width_and_crop", 50, 24, (3, 24, 24)),
    ("crop", 0 + 1, [40, 90], (3, 40, 90)),                 # load_size unused
    ("none", 1, 1, (3, 60, 100)),                           # already multiples of 4
])
def test_each_option_gives_the_reference_shape(preprocess, load, crop, train_shape):
    for train in (True, False):
        out = image_transform(load, crop, True, train, preprocess)(IMAGE)
        assert out.shape == train_shape, (preprocess, train)
        assert out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1


def test_none_rounds_to_multiples_of_four():
    odd = torch.zeros(1, 61, 102, dtype=torch.uint8)
    assert image_transform(1, 1, False, False, "none")(odd).shape == (1, 60, 104)  # round(61/4)*4, round(102/4)*4


def test_options_match_hand_made_reference_steps():
    resize = v2.functional.resize
    bicubic = dict(interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
    expect = {
        "scale_shorter_side_and_crop": v2.functional.center_crop(resize(IMAGE, 30, **bicubic), [24, 24]),
        "resize_and_crop": v2.functional.center_crop(resize(IMAGE, [30, 30], **bicubic), [24, 24]),
        "scale_width_and_crop": v2.functional.center_crop(resize(IMAGE, [32, 50], **bicubic), [24, 24]),
    }
    for name, img in expect.items():
        out = image_transform(30 if "shorter" in name or "resize" in name else 50, 24, False, False, name)(IMAGE)
        assert torch.allclose(out, img.float() / 255 * 2 - 1, atol=1e-6, rtol=0), name


def test_resize_and_crop_differs_from_shorter_side_on_non_square_images():
    a = image_transform(30, 30, False, False, "resize_and_crop")(IMAGE)
    b = image_transform(30, 30, False, False, "scale_shorter_side_and_crop")(IMAGE)
    assert a.shape == b.shape == (3, 30, 30) and not torch.equal(a, b)


def test_random_crop_is_shared_by_both_images_of_a_pair():
    t = paired_transform([30, 40], [20, 36], True, True, "resize_and_crop")
    torch.manual_seed(3)
    a, b = t(IMAGE, IMAGE.clone())
    assert a.shape == (3, 20, 36) and torch.equal(a, b)


@pytest.mark.parametrize("preprocess, load, crop, message", [
    ("resize", 30, 24, "preprocess: unknown option 'resize'; choose one of " + ", ".join(PREPROCESS)),
    ("scale_shorter_side_and_crop", [30, 40], 24, "load_size: scale_shorter_side_and_crop resizes one side to load_size, "
     "so it takes one number, got [30, 40]; for an exact [H, W] use preprocess: resize_and_crop"),
    ("scale_shorter_side_and_crop", 30, [20, 36], "crop_size [20, 36] is larger than the shorter side load_size 30"),
    ("resize_and_crop", [30, 40], [20, 41], "crop_size [20, 41] is larger than load_size [30, 40]"),
    ("scale_width_and_crop", 30, 36, "crop_size 36 is wider than the width load_size 30"),
    ("crop", 30, [1, 2, 3], "crop_size: a positive number of pixels or [H, W], got [1, 2, 3]"),
    ("crop", 0, 8, "load_size: a positive number of pixels or [H, W], got 0"),
])
def test_bad_settings_are_refused_with_the_key(preprocess, load, crop, message):
    with pytest.raises(ValueError) as info:
        check_preprocess(preprocess, load, crop)
    assert str(info.value) == message


def test_recipe_error_names_the_dataset_key_and_the_argument(tmp_path):
    with pytest.raises(RecipeError) as info:
        default_registry().create("dataset", "unaligned_folder", "data.dataset", root=str(tmp_path), crop_size=[300, 200],
                                  load_size=286)
    assert str(info.value) == "data.dataset: crop_size [300, 200] is larger than the shorter side load_size 286"


def test_crop_larger_than_the_image_names_the_file(tmp_path):
    from unpaired_plugins.datasets.folder import UnalignedFolder

    (tmp_path / "trainA").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "trainA" / "small.png")
    domain = UnalignedFolder(str(tmp_path), load_size=8, crop_size=16, preprocess="crop").domain("A", "train")
    with pytest.raises(DataError) as info:
        domain[0]
    assert str(info.value) == (f"{tmp_path / 'trainA' / 'small.png'}: the crop 16x16 (H x W) is larger than the image "
                               "10x20 after resizing; lower crop_size or raise load_size.")
