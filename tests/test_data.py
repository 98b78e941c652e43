"""Data plumbing: image decoding, the folder and Fashion-MNIST datasets, unaligned pairing, sampling."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
import pytest
import torch
from PIL import Image
from torchvision.io import write_png
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import rgb_to_grayscale

from conftest import raises, write_images
from unpaired import DataError
from unpaired.data.pairs import EpochSampler, UnalignedPairs
from unpaired.domains import domain_channels
from unpaired.data.io import read_image, to_float
from unpaired.data.preprocess import image_transform
from unpaired_plugins.datasets.fashion import FashionMNIST, read_idx
from unpaired_plugins.datasets.folder import FolderDomain, UnalignedFolder

FULL_FASHION = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------------------------
# helpers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit PNG by hand (torchvision writes uint8 only): arr (H, W) grey or (H, W, 3) RGB."""
    color_type = 0 if arr.ndim == 2 else 2
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1).astype(">u2")
    raw = b"".join(b"\0" + rows[y].tobytes() for y in range(h))  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")
    path.write_bytes(png)


def idx_bytes(arr: np.ndarray) -> bytes:
    """An unsigned-byte IDX file (LeCun's MNIST format) holding ``arr``."""
    arr = np.asarray(arr, dtype=np.uint8)
    return b"\0\0\x08" + bytes([arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape) + arr.tobytes()


def expected_test_item(path: Path, channels: int, load_size: int, crop_size: int) -> torch.Tensor:
    """The reference test-time preprocessing done by hand: resize, centre crop, scale to [-1, 1]."""
    img = read_image(path, channels)
    img = v2.functional.resize(img, load_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
    img = v2.functional.center_crop(img, crop_size)
    return img.float() / 255 * 2 - 1


# --------------------------------------------------------------------------------------------
# read_image


def test_read_image_rgb_as_grey(tmp_path):
    rgb = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    write_png(rgb, str(tmp_path / "rgb.png"))
    grey = read_image(tmp_path / "rgb.png", 1)
    assert grey.shape == (1, 5, 7) and grey.dtype == torch.uint8
    # the ITU-R 601 luma, as torchvision's rgb_to_grayscale, rounded
    assert (grey.int() - rgb_to_grayscale(rgb).int()).abs().max() <= 1

    write_png(torch.full((3, 4, 4), 77, dtype=torch.uint8), str(tmp_path / "flat.png"))
    flat = read_image(tmp_path / "flat.png", 1)
    assert flat.shape == (1, 4, 4)
    assert flat.unique().tolist() == [77]


def test_read_image_rgb_as_rgb_is_exact(tmp_path):
    rgb = torch.randint(0, 256, (3, 6, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    write_png(rgb, str(tmp_path / "rgb.png"))
    assert torch.equal(read_image(tmp_path / "rgb.png", 3), rgb)


def test_read_image_grey_as_rgb(tmp_path):
    grey = torch.randint(0, 256, (1, 5, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    write_png(grey, str(tmp_path / "grey.png"))
    img = read_image(tmp_path / "grey.png", 3)
    assert img.shape == (3, 5, 6) and img.dtype == torch.uint8
    for c in range(3):
        assert torch.equal(img[c], grey[0])


def test_read_image_rgba_drops_alpha(tmp_path):
    rgba = torch.randint(0, 256, (4, 5, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    rgba[3, 0, 0] = 0  # a fully transparent pixel keeps its colour too
    # torchvision's write_png takes 1 or 3 channels only: write the RGBA file with PIL
    Image.fromarray(rgba.permute(1, 2, 0).numpy(), "RGBA").save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png", 3)
    assert img.shape == (3, 5, 6)
    assert torch.equal(img, rgba[:3])
    assert read_image(tmp_path / "rgba.png", 1).shape == (1, 5, 6)


def test_read_image_16bit_grey_keeps_its_precision(tmp_path):
    values = np.array([[0, 255, 256, 1000], [40000, 65535, 12345, 65280]], dtype=np.uint16)
    write_png16(tmp_path / "g16.png", values)
    assert np.array_equal(np.array(Image.open(tmp_path / "g16.png")), values)  # the hand-made file is valid
    expected = torch.from_numpy(values.astype(np.float32) / 65535)
    assert expected[0, 1] != expected[0, 2]  # 255 and 256: one 8-bit level, two 16-bit ones

    grey = read_image(tmp_path / "g16.png", 1)
    assert grey.dtype == torch.float32 and grey.shape == (1, 2, 4)
    assert torch.equal(grey[0], expected)

    rgb = read_image(tmp_path / "g16.png", 3)
    assert rgb.dtype == torch.float32 and rgb.shape == (3, 2, 4)
    for c in range(3):
        assert torch.equal(rgb[c], expected)
    assert torch.allclose(to_float(grey), expected * 2 - 1)


def test_read_image_16bit_rgb_keeps_its_precision(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, size=(3, 5, 3), dtype=np.uint16)
    write_png16(tmp_path / "rgb16.png", values)
    img = read_image(tmp_path / "rgb16.png", 3)
    assert img.dtype == torch.float32
    assert torch.equal(img, torch.from_numpy(values.astype(np.float32) / 65535).permute(2, 0, 1))
    assert len(torch.unique(img)) == 45  # 45 distinct 16-bit values survive (no >> 8)


@pytest.mark.parametrize("content", [bytes(range(256)) * 3, b"\x89PNG\r\n\x1a\n" + bytes(100)], ids=["random", "bad-png-header"])
def test_read_image_corrupt_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_image(path, 3)
    assert str(path) in str(info.value)
    assert "cannot decode" in str(info.value)


def test_read_image_applies_exif_orientation(tmp_path):
    # stored 32 wide x 16 high, left half red, right half blue; orientation 6 = rotate 90 deg clockwise
    # to display, so the displayed image is 16 wide x 32 high, red on top, blue below.
    arr = np.zeros((16, 32, 3), dtype=np.uint8)
    arr[:, :16] = (255, 0, 0)
    arr[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "exif.jpg", quality=95, exif=exif.tobytes())
    img = read_image(tmp_path / "exif.jpg", 3)
    assert img.shape == (3, 32, 16)
    top, bottom = img[:, 2:14].float().mean((1, 2)), img[:, 18:30].float().mean((1, 2))
    assert top[0] > 200 and top[2] < 50  # red
    assert bottom[2] > 200 and bottom[0] < 50  # blue


# --------------------------------------------------------------------------------------------
# domain_channels / image_transform


def test_domain_channels():
    assert domain_channels(3, "A") == 3 and domain_channels(3, "B") == 3
    assert domain_channels([1, 3], "A") == 1 and domain_channels([1, 3], "B") == 3
    assert domain_channels((3, 1), "B") == 1
    for bad in (2, 0, [1, 2], [1, 3, 3], [3]):
        with pytest.raises(ValueError):
            domain_channels(bad, "A")


def test_image_transform_range_and_shape():
    img = torch.tensor([[[0, 255], [255, 0]]], dtype=torch.uint8).repeat(1, 4, 4)  # (1, 8, 8)
    out = image_transform(8, 8, flip=False, train=False)(img)
    assert out.dtype == torch.float32 and out.shape == (1, 8, 8)
    assert torch.equal(out, img.float() / 255 * 2 - 1)  # 0 -> -1, 255 -> 1


# --------------------------------------------------------------------------------------------
# FolderDomain / UnalignedFolder


def test_folder_missing(tmp_path):
    data = UnalignedFolder(root=str(tmp_path / "nowhere"), load_size=16, crop_size=16)
    with pytest.raises(DataError) as info:
        data.domain("A", "train")
    msg = str(info.value)
    assert str(tmp_path / "nowhere" / "trainA") in msg
    assert "folder not found" in msg
    assert "root/trainA" in msg and "root/testB" in msg  # the expected layout
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "trainA").write_text("")
    with raises(DataError, "not-a-folder", says=("trainA", "root/trainA")):
        data.domain("A", "train")


def test_folder_empty(tmp_path):
    (tmp_path / "trainA").mkdir()
    with pytest.raises(DataError) as info:
        UnalignedFolder(root=str(tmp_path), load_size=16, crop_size=16).domain("A", "train")
    assert str(tmp_path / "trainA") in str(info.value)
    assert "the folder is empty" in str(info.value)


def test_folder_without_readable_images(tmp_path):
    folder = tmp_path / "testB"
    folder.mkdir()
    for name in ("notes.txt", "photo.raw", "Thumbs.db"):
        (folder / name).write_bytes(b"x")
    (folder / ".hidden.png").write_bytes(b"x")  # hidden files are not images either
    with pytest.raises(DataError) as info:
        UnalignedFolder(root=str(tmp_path), load_size=16, crop_size=16).domain("B", "test")
    msg = str(info.value)
    assert str(folder) in msg
    assert "it holds e.g. notes.txt, photo.raw." in msg  # OS metadata and hidden files are not listed
    assert "the folder is empty" not in msg


def test_folder_items(image_root):
    data = UnalignedFolder(root=str(image_root), load_size=20, crop_size=12)
    domain = data.domain("A", "train")
    assert len(domain) == 8
    img, name = domain[3]
    assert name == "img_003.png"
    assert img.shape == (3, 12, 12) and img.dtype == torch.float32
    assert -1.0 <= img.min() and img.max() <= 1.0
    assert img.min() < 0 < img.max()  # random pixels cover the range


def test_folder_sorted_and_filtered(tmp_path):
    folder = tmp_path / "trainA"
    write_images(folder, 3)
    (folder / "readme.txt").write_text("not an image")
    (folder / "img_000.png").rename(folder / "z_last.PNG")  # extension match is case-insensitive
    domain = FolderDomain(folder, 3, image_transform(16, 16, False, False))
    assert [p.name for p in domain.files] == ["img_001.png", "img_002.png", "z_last.PNG"]


def test_folder_test_split_is_deterministic_centre_crop(image_root):
    domain = UnalignedFolder(root=str(image_root), load_size=20, crop_size=12).domain("B", "test")
    torch.manual_seed(0)
    first, name = domain[2]
    torch.manual_seed(1)
    second, _ = domain[2]
    assert torch.equal(first, second)
    expected = expected_test_item(image_root / "testB" / name, 3, 20, 12)
    assert torch.allclose(first, expected, atol=1e-6)


def test_folder_train_split_is_random(image_root):
    domain = UnalignedFolder(root=str(image_root), load_size=20, crop_size=12).domain("A", "train")
    draws = []
    for seed in range(6):
        torch.manual_seed(seed)
        draws.append(domain[0][0])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    torch.manual_seed(3)
    assert torch.equal(domain[0][0], draws[3])  # a function of the torch RNG only


def test_folder_train_flip_only(tmp_path):
    # load_size == crop_size: the crop is the whole image, so only the flip is random
    write_images(tmp_path / "trainA", 1, size=8)
    domain = UnalignedFolder(root=str(tmp_path), load_size=8, crop_size=8).domain("A", "train")
    plain = expected_test_item(tmp_path / "trainA" / "img_000.png", 3, 8, 8)
    seen = set()
    for seed in range(10):
        torch.manual_seed(seed)
        img = domain[0][0]
        if torch.allclose(img, plain, atol=1e-6):
            seen.add("plain")
        elif torch.allclose(img, plain.flip(-1), atol=1e-6):
            seen.add("flipped")
        else:
            pytest.fail("a train item is neither the image nor its mirror")
    assert seen == {"plain", "flipped"}

    no_flip = UnalignedFolder(root=str(tmp_path), load_size=8, crop_size=8, flip=False).domain("A", "train")
    for seed in range(5):
        torch.manual_seed(seed)
        assert torch.allclose(no_flip[0][0], plain, atol=1e-6)


def test_folder_channel_pair(image_root):
    data = UnalignedFolder(root=str(image_root), channels=[1, 3], load_size=16, crop_size=16)
    a, _ = data.domain("A", "train")[0]
    b, _ = data.domain("B", "test")[0]
    assert a.shape == (1, 16, 16)
    assert b.shape == (3, 16, 16)


def test_folder_bad_arguments(image_root):
    with pytest.raises(ValueError):
        UnalignedFolder(root=str(image_root), channels=2)
    with pytest.raises(ValueError):
        UnalignedFolder(root=str(image_root), channels=[1, 2])
    with pytest.raises(ValueError, match="crop_size"):
        UnalignedFolder(root=str(image_root), load_size=16, crop_size=32)


def test_folder_corrupt_file_names_it(tmp_path):
    write_images(tmp_path / "trainA", 1)
    bad = tmp_path / "trainA" / "zz_broken.png"
    bad.write_bytes(b"garbage")
    domain = UnalignedFolder(root=str(tmp_path), load_size=16, crop_size=16).domain("A", "train")
    domain[0]
    with raises(DataError, "cannot-decode", says=("zz_broken.png",)):
        domain[1]


# --------------------------------------------------------------------------------------------
# UnalignedPairs


@pytest.fixture
def uneven_root(tmp_path):
    """3 images in trainA, 8 in trainB."""
    write_images(tmp_path / "trainA", 3, seed=10)
    write_images(tmp_path / "trainB", 8, seed=11)
    return tmp_path


def _pairs(root, seed=0):
    data = UnalignedFolder(root=str(root), load_size=20, crop_size=12)
    return UnalignedPairs(data.domain("A", "train"), data.domain("B", "train"), seed=seed)


def test_pairs_length_and_a_order(uneven_root):
    pairs = _pairs(uneven_root)
    assert len(pairs) == 8
    names_a = [f"img_{i:03d}.png" for i in range(3)]
    for i in range(8):
        item = pairs[i]
        assert set(item) == {"real_A", "real_B", "name_A", "name_B"}
        assert item["name_A"] == names_a[i % 3]
        assert item["real_A"].shape == item["real_B"].shape == (3, 12, 12)

    # |A| > |B| the other way round
    swapped = UnalignedPairs(pairs.b, pairs.a)
    assert len(swapped) == 8
    assert [swapped[i]["name_A"] for i in range(8)] == [f"img_{i:03d}.png" for i in range(8)]


def test_pairs_deterministic_and_order_independent(uneven_root):
    one, two = _pairs(uneven_root, seed=5), _pairs(uneven_root, seed=5)
    one.set_epoch(3)
    two.set_epoch(3)
    forward = [one[i] for i in range(8)]
    torch.manual_seed(123)  # the global RNG does not matter
    backward = {i: two[i] for i in reversed(range(8))}
    for i in range(8):
        a, b = forward[i], backward[i]
        assert a["name_B"] == b["name_B"] and a["name_A"] == b["name_A"]
        assert torch.equal(a["real_A"], b["real_A"])
        assert torch.equal(a["real_B"], b["real_B"])
    # asking again, after other items, gives the same sample
    again = one[4]
    assert again["name_B"] == forward[4]["name_B"]
    assert torch.equal(again["real_A"], forward[4]["real_A"]) and torch.equal(again["real_B"], forward[4]["real_B"])


def test_pairs_epoch_and_seed_change_draws(uneven_root):
    pairs = _pairs(uneven_root)
    draws = {}
    for epoch in (0, 1):
        pairs.set_epoch(epoch)
        draws[epoch] = [pairs[i] for i in range(8)]
    assert any(x["name_B"] != y["name_B"] for x, y in zip(draws[0], draws[1]))
    assert any(not torch.equal(x["real_A"], y["real_A"]) for x, y in zip(draws[0], draws[1]))  # crops/flips too
    other_seed = _pairs(uneven_root, seed=1)
    assert any(other_seed[i]["name_B"] != draws[0][i]["name_B"] for i in range(8))
    # the B draws cover more than one image
    assert len({d["name_B"] for d in draws[0] + draws[1]}) > 1


def test_pairs_keep_global_rng(uneven_root):
    pairs = _pairs(uneven_root)
    torch.manual_seed(42)
    state = torch.get_rng_state()
    expected_next = torch.rand(3)
    torch.set_rng_state(state)
    pairs[0]
    pairs[5]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(3), expected_next)


def test_pairs_empty_domain(uneven_root):
    data = UnalignedFolder(root=str(uneven_root), load_size=20, crop_size=12)
    with raises(DataError, "no-images", key="B"):
        UnalignedPairs(data.domain("A", "train"), [])
    with raises(DataError, "no-images", key="A"):
        UnalignedPairs([], data.domain("B", "train"))


# --------------------------------------------------------------------------------------------
# EpochSampler


def idx(sampler) -> list[int]:
    """The sample indices of a sampler's ``(epoch, index)`` items."""
    return [i for _, i in sampler]


def test_sampler_permutation():
    sampler = EpochSampler(10, seed=3)
    indices = idx(sampler)
    assert sorted(indices) == list(range(10))
    assert indices != list(range(10))  # shuffled (fixed seed: not by chance)
    assert len(sampler) == 10
    assert idx(EpochSampler(10, shuffle=False)) == list(range(10))
    sampler.set_epoch(4)
    assert {e for e, _ in sampler} == {4}  # the epoch travels with the index (persistent workers)


def test_sampler_seed_and_epoch():
    a, b = EpochSampler(50, seed=7), EpochSampler(50, seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    assert idx(a) == idx(b)
    assert idx(a) == idx(a)  # iterating twice gives the same epoch
    b.set_epoch(3)
    assert idx(a) != idx(b)
    c = EpochSampler(50, seed=8)
    c.set_epoch(2)
    assert idx(a) != idx(c)


@pytest.mark.parametrize("n", [10, 11])
def test_sampler_ranks(n):
    ranks = [EpochSampler(n, seed=1, rank=r, world_size=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(4)
    parts = [idx(s) for s in ranks]
    assert all(len(p) == n // 2 for p in parts)
    assert all(len(s) == n // 2 for s in ranks)
    assert not set(parts[0]) & set(parts[1])
    # interleaved, they are the single-rank order (remainder dropped): the ranks' k-th batches
    # together are the single process's k-th batch
    whole = EpochSampler(n, seed=1)
    whole.set_epoch(4)
    assert [i for pair in zip(*parts) for i in pair] == idx(whole)[: 2 * (n // 2)]


def test_sampler_resume_start():
    full = EpochSampler(20, seed=2)
    full.set_epoch(5)
    resumed = EpochSampler(20, seed=2)
    resumed.set_epoch(5, start=7)
    assert idx(resumed) == idx(full)[7:]
    assert len(resumed) == 13
    resumed.set_epoch(6)  # the next epoch starts from the beginning
    assert len(idx(resumed)) == 20

    rank1 = EpochSampler(20, seed=2, rank=1, world_size=2)
    rank1.set_epoch(5)
    rank1_resumed = EpochSampler(20, seed=2, rank=1, world_size=2)
    rank1_resumed.set_epoch(5, start=3)
    assert idx(rank1_resumed) == idx(rank1)[3:]
    assert len(rank1_resumed) == 7


# --------------------------------------------------------------------------------------------
# Fashion-MNIST


def test_fashion_embedded_sizes_and_items():
    data = FashionMNIST()
    assert data.channels == 1
    train_a, test_b = data.domain("A", "train"), data.domain("B", "test")
    assert len(train_a) == 1000
    assert len(test_b) == 200
    assert len(data.domain("B", "train")) == 1000 and len(data.domain("A", "test")) == 200
    img, name = train_a[0]
    assert name == "trainA_00000.png"
    assert test_b[17][1] == "testB_00017.png"
    assert img.shape == (1, 28, 28) and img.dtype == torch.float32
    assert img.min() >= -1.0 and img.max() <= 1.0
    assert img.min() == -1.0  # Fashion-MNIST backgrounds are black
    assert img.max() > 0.5


def test_fashion_embedded_test_item_matches_array():
    from unpaired_plugins.datasets.fashion import EMBEDDED

    with np.load(EMBEDDED) as npz:
        raw = npz["test_9"]
    assert raw.shape == (200, 28, 28) and raw.dtype == np.uint8
    img, _ = FashionMNIST().domain("B", "test")[5]
    expected = v2.functional.center_crop(
        v2.functional.resize(torch.from_numpy(raw[5])[None], 32, interpolation=v2.InterpolationMode.BICUBIC, antialias=True), 28
    ).float() / 255 * 2 - 1
    assert torch.allclose(img, expected, atol=1e-6)
    # no resize at load_size == crop_size: the raw pixels scaled to [-1, 1]
    img, _ = FashionMNIST(load_size=28).domain("B", "test")[5]
    assert torch.allclose(img[0], torch.from_numpy(raw[5]).float() / 255 * 2 - 1, atol=1e-6)


def test_fashion_limit_and_labels():
    assert len(FashionMNIST(limit=5).domain("A", "train")) == 5
    assert len(FashionMNIST(limit=5).domain("B", "test")) == 5
    for bad in (-1, 10):
        with pytest.raises(ValueError, match="0..9"):
            FashionMNIST(class_A=bad)
        with pytest.raises(ValueError):
            FashionMNIST(class_B=bad)
    with pytest.raises(ValueError):
        FashionMNIST(channels=3)
    with pytest.raises(ValueError, match="both 7"):
        FashionMNIST(class_A=7, class_B=7)  # one class on both sides translated it into itself
    with raises(DataError, "not-embedded", key="data.args.class_A"):
        FashionMNIST(class_A=0).domain("A", "train")  # not in the embedded subset


def test_read_idx(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 9, 0, 255], dtype=np.uint8)
    (tmp_path / "images").write_bytes(idx_bytes(images))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    got = read_idx(tmp_path / "images")
    assert got.shape == (2, 3, 4) and got.dtype == np.uint8
    assert np.array_equal(got, images)
    got = read_idx(tmp_path / "labels.gz")
    assert np.array_equal(got, labels)


@pytest.mark.parametrize(
    "name, content",
    [
        ("short_data", idx_bytes(np.zeros((2, 3, 4)))[:-3]),
        ("short_header", idx_bytes(np.zeros((2, 3, 4)))[:10]),
        ("not_idx", b"\x12\x34\x08\x01" + bytes(8)),
        ("int32_idx", b"\0\0\x0c\x01" + (2).to_bytes(4, "big") + bytes(8)),
        ("empty", b""),
        ("truncated.gz", gzip.compress(idx_bytes(np.zeros((50, 50))))[:-10]),
        ("not_gzip.gz", idx_bytes(np.zeros(4))),
    ],
)
def test_read_idx_bad_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_fashion_idx_folder_source(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(train)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes([7, 9, 7, 1, 7, 9]))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(test))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes([9, 3, 9])))
    data = FashionMNIST(source=str(tmp_path), load_size=28)
    a = data.domain("A", "train")
    assert len(a) == 3
    for k, row in enumerate((0, 2, 4)):  # the class-7 rows, in file order
        img, name = a[k]
        assert name == f"trainA_{k:05d}.png"
        # load 28 / crop 28: only the random flip can change the image
        expected = torch.from_numpy(train[row]).float() / 255 * 2 - 1
        assert torch.allclose(img[0], expected, atol=1e-6) or torch.allclose(img[0], expected.flip(-1), atol=1e-6)
    b = data.domain("B", "test")
    assert len(b) == 2
    assert torch.allclose(b[1][0][0], torch.from_numpy(test[2]).float() / 255 * 2 - 1, atol=1e-6)
    assert len(FashionMNIST(source=str(tmp_path), class_B=3).domain("B", "test")) == 1


def test_fashion_folder_source_missing_files(tmp_path):
    with pytest.raises(DataError) as info:
        FashionMNIST(source=str(tmp_path)).domain("A", "train")
    msg = str(info.value)
    assert str(tmp_path) in msg
    assert "train-images-idx3-ubyte" in msg
    assert "apt-get install dataset-fashion-mnist" in msg


@pytest.mark.skipif(not (FULL_FASHION / "train-labels-idx1-ubyte.gz").exists() and not (FULL_FASHION / "train-labels-idx1-ubyte").exists(),
                    reason="the full Fashion-MNIST set (apt-get install dataset-fashion-mnist) is not installed")
def test_fashion_full_set():
    data = FashionMNIST(source=str(FULL_FASHION))
    sneakers = data.domain("A", "train")
    assert len(sneakers) == 6000
    assert len(data.domain("B", "test")) == 1000
    img, name = sneakers[5999]
    assert img.shape == (1, 28, 28) and name == "trainA_05999.png"


def test_bmp_and_tiff_decode_like_png(tmp_path):
    rgb = torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8)
    image = Image.fromarray(rgb.permute(1, 2, 0).numpy())
    for suffix in (".bmp", ".tif", ".TIFF"):
        image.save(tmp_path / f"x{suffix}")
        assert torch.equal(read_image(tmp_path / f"x{suffix}", 3), rgb), suffix
        assert torch.equal(read_image(tmp_path / f"x{suffix}", 1), rgb_to_grayscale(rgb.float()).round().to(torch.uint8)), suffix
    (tmp_path / "bad.tif").write_bytes(b"II*\0 not really a tiff")
    with raises(DataError, "cannot-decode", key=str(tmp_path / "bad.tif")):
        read_image(tmp_path / "bad.tif", 3)


def test_tiff_of_more_than_8_bits_keeps_its_precision(tmp_path):
    grey16 = np.array([[0, 256, 65535], [1000, 40000, 257]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "pil16.tif")  # Pillow's "I;16"
    tifffile.imwrite(tmp_path / "g16.tif", grey16)
    for name in ("pil16.tif", "g16.tif"):
        img = read_image(tmp_path / name, 1)
        assert img.dtype == torch.float32 and torch.equal(img[0], torch.from_numpy(grey16 / np.float32(65535))), name
        assert img[0, 0, 1] != img[0, 1, 2]  # 256 and 257: one level in 8 bits

    rgb16 = np.random.default_rng(1).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16)  # Pillow would read this as 8-bit RGB
    img = read_image(tmp_path / "rgb16.tif", 3)
    assert img.shape == (3, 4, 6) and torch.equal(img, torch.from_numpy(rgb16 / np.float32(65535)).permute(2, 0, 1))
    planar = read_image(_write(tmp_path / "planar.tif", rgb16.transpose(2, 0, 1), photometric="rgb", planarconfig="separate"), 3)
    assert torch.equal(planar, img)

    unit = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)  # float already in [0, 1]: kept
    assert read_image(_write(tmp_path / "unit.tif", unit), 1)[0].tolist() == unit.tolist()
    floats = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)  # other floats: their own range onto [0, 1]
    for name, writer in (("f.tif", tifffile.imwrite), ("pilf.tif", lambda p, a: Image.fromarray(a).save(p))):
        writer(tmp_path / name, floats)
        assert read_image(tmp_path / name, 1)[0].tolist() == [[0.0, 0.25], [0.5, 1.0]], name
    assert read_image(tmp_path / "f.tif", 3).shape == (3, 2, 2)

    five = np.zeros((2, 2, 5), dtype=np.uint16)
    with raises(DataError, "channels", key=str(tmp_path / "five.tif"), says=("5 samples per pixel",)):
        read_image(_write(tmp_path / "five.tif", five, planarconfig="contig", photometric="minisblack"), 3)

    # through the transform: the float image keeps its 16-bit steps and stays in [-1, 1]
    out = image_transform(4, 4, False, False, "resize_and_crop")(read_image(tmp_path / "rgb16.tif", 3))
    assert out.shape == (3, 4, 4) and out.min() >= -1 and out.max() <= 1 and len(torch.unique(out)) > 40


def _write(path, array, **kwargs):
    tifffile.imwrite(path, array, **kwargs)
    return path


def test_folder_walks_subfolders_and_skips_what_is_not_an_image(tmp_path, capsys):
    folder = tmp_path / "trainA"
    write_images(folder / "day2", 2, seed=1)
    write_images(folder / "day1", 1, seed=2)
    write_images(folder, 1, seed=3)
    Image.new("RGB", (16, 16)).save(folder / "day1" / "scan.bmp")
    for junk in ("._img_000.png", ".DS_Store", "Thumbs.db"):
        (folder / junk).write_bytes(b"metadata")
    write_images(folder / ".hidden", 1)  # hidden folders are skipped too
    (folder / "notes.txt").write_text("not an image")
    (folder / "day2" / "loop").symlink_to(folder, target_is_directory=True)  # a link back up: walked once
    write_images(tmp_path / "trainB", 2)
    (folder / "all").symlink_to(tmp_path, target_is_directory=True)  # would pull in trainB: skipped, said
    domain = FolderDomain(folder, 3, image_transform(16, 16, False, False))
    names = [domain[i][1] for i in range(len(domain))]
    assert names == ["day1/img_000.png", "day1/scan.bmp", "day2/img_000.png", "day2/img_001.png", "img_000.png"]
    err = capsys.readouterr().err
    assert f"{folder / 'all'}: skipped, it links to {tmp_path}, a folder that holds {folder} itself." in err
    assert "1 file(s) that are not images" in err and "e.g. notes.txt" in err
